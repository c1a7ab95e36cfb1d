// img2prompt's page: images in (drop, paste, pick), one POST /v1/interrogate per image, a card per image.
// Plain browser JS served by the server itself, so the page works with no network beyond it.

const TOKEN_KEY = 'img2prompt.token';
// A few requests in flight keep the server's batcher fed without queueing a large batch at once
// (the server answers 429 past its --queue).
const IN_FLIGHT = 4;

const $ = (id) => document.getElementById(id);
const results = $('results');
const template = $('card-template');
const statusLine = $('status');
const progressRow = $('progress-row');
const progress = $('progress');
const progressText = $('progress-text');

/** Images not yet sent, and the counts the progress bar shows for the batch under way. */
const pending = [];
const batch = { total: 0, done: 0 };
let running = 0;

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

function authHeaders() {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

function setStatus(text, bad = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle('bad', bad);
}

function askForToken(message) {
  $('token-box').open = true;
  $('token').focus();
  setStatus(message, true);
}

async function checkReady() {
  try {
    const res = await fetch('/readyz');
    const body = await res.json();
    if (res.ok) {
      setStatus(`ready · model ${body.model}`);
      return;
    }
    setStatus(body.error?.message ?? `not ready (${res.status})`, body.error?.code === 'load_failed');
    if (body.error?.code === 'loading') setTimeout(checkReady, 2000);
  } catch (err) {
    setStatus(`the server cannot be reached: ${err.message}`, true);
  }
}

function drawProgress() {
  progressRow.hidden = batch.total === 0;
  progress.max = Math.max(batch.total, 1);
  progress.value = batch.done;
  progressText.textContent = `${batch.done} / ${batch.total}`;
}

/** Adds images to the page and to the queue of uploads. */
function addFiles(files) {
  const images = [...files].filter((f) => f.type === '' || f.type.startsWith('image/'));
  if (images.length === 0) return;
  // A new drop after the previous batch finished starts a new progress count.
  if (batch.done === batch.total) Object.assign(batch, { total: 0, done: 0 });
  for (const file of images) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.name = file.name;
    card.querySelector('.name').textContent = file.name;
    const thumb = card.querySelector('.thumb');
    thumb.src = URL.createObjectURL(file);
    thumb.alt = file.name;
    results.append(card);
    pending.push({ file, card });
    batch.total++;
  }
  drawProgress();
  pump();
}

function pump() {
  while (running < IN_FLIGHT && pending.length > 0) {
    const job = pending.shift();
    running++;
    interrogate(job).finally(() => {
      running--;
      batch.done++;
      drawProgress();
      pump();
    });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function interrogate({ file, card }) {
  const state = card.querySelector('.state');
  state.textContent = 'interrogating…';
  const query = new URLSearchParams({ id: file.name, mode: $('mode').value });
  try {
    for (;;) {
      const res = await fetch(`/v1/interrogate?${query}`, {
        method: 'POST',
        headers: { 'content-type': file.type || 'application/octet-stream', ...authHeaders() },
        body: file,
      });
      const body = await res.json().catch(() => ({ error: { message: `HTTP ${res.status} without a JSON body` } }));
      // A full queue is temporary: wait as told and send again.
      if (res.status === 429 || (res.status === 503 && body.error?.code === 'loading')) {
        state.textContent = res.status === 429 ? 'server busy, retrying…' : 'models loading, retrying…';
        await sleep(1000 * Number(res.headers.get('retry-after') ?? 1));
        continue;
      }
      if (res.status === 401) askForToken('this server needs a token: paste it under “Token”, then drop the images again');
      if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
      showResult(card, body.results[0]);
      return;
    }
  } catch (err) {
    card.classList.add('failed');
    state.textContent = err.message;
  }
}

function showResult(card, result) {
  card.classList.add('done');
  const sim = typeof result.similarity === 'number' ? ` · similarity to the image ${result.similarity.toFixed(3)}` : '';
  card.querySelector('.state').textContent = `done${sim}`;
  if (result.caption) {
    const caption = card.querySelector('.caption');
    caption.textContent = result.caption;
    caption.hidden = false;
  }
  card.querySelector('.prompt').textContent = result.prompt;
  card.querySelector('.prompt-row').hidden = false;
  card.querySelector('.copy').addEventListener('click', (e) => copy(result.prompt, e.currentTarget));
  card.querySelector('.banks').replaceChildren(...bankSections(result.labels));
}

/** The chosen labels grouped by bank, best first, each with a bar. */
function bankSections(labels) {
  const byBank = new Map();
  for (const l of labels) {
    if (!byBank.has(l.bank)) byBank.set(l.bank, []);
    byBank.get(l.bank).push(l);
  }
  // CLIP cosines between an image and short labels sit in a narrow band (about 0.1–0.35): bars are
  // scaled to the image's best label so the differences are visible; the number is the raw cosine.
  const top = Math.max(...labels.map((l) => l.similarity), 1e-6);
  return [...byBank].map(([bank, rows]) => {
    const section = document.createElement('section');
    section.className = 'bank';
    const title = document.createElement('h3');
    title.textContent = bank;
    section.append(title);
    for (const l of rows.sort((a, b) => b.similarity - a.similarity)) {
      const row = document.createElement('div');
      row.className = 'label';
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = l.label;
      text.title = l.label;
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fill = document.createElement('span');
      fill.style.width = `${Math.max(0, Math.min(1, l.similarity / top)) * 100}%`;
      bar.append(fill);
      const value = document.createElement('span');
      value.className = 'value';
      value.textContent = l.similarity.toFixed(3);
      row.append(text, bar, value);
      section.append(row);
    }
    return section;
  });
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Without a secure context (a LAN address over http) the Clipboard API is absent: select instead.
    const range = document.createRange();
    range.selectNodeContents(button.previousElementSibling);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand('copy');
  }
  button.textContent = 'Copied';
  setTimeout(() => (button.textContent = 'Copy'), 1500);
}

function wire() {
  const zone = $('dropzone');
  $('files').addEventListener('change', (e) => {
    addFiles(e.target.files);
    e.target.value = '';
  });
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add('over');
    });
  }
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  // Drops anywhere on the page count (a miss by a few pixels should not open the image in the tab).
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    addFiles(e.dataTransfer?.files ?? []);
  });
  document.addEventListener('paste', (e) => {
    if (e.target instanceof HTMLInputElement) return;
    addFiles(e.clipboardData?.files ?? []);
  });
  $('token').value = token();
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
    $('token-box').open = false;
    checkReady();
  });
}

wire();
checkReady();
