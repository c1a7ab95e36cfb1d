#!/usr/bin/env node
// Fetches the ONNX Runtime C headers (Debian's libonnxruntime-dev from the `forky` suite) into
// .deps/ort-headers without installing anything system-wide: a private apt sources list and state
// directory, `apt-get download`, then `dpkg -x`. The archive mirror and keyring are taken from the
// machine's own apt configuration, so the signature of the suite is checked as for any apt update.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dest = path.join(root, '.deps', 'ort-headers');
const header = path.join(dest, 'usr', 'include', 'onnxruntime', 'onnxruntime_c_api.h');
const SUITE = process.env.IMG2PROMPT_ORT_HEADERS_SUITE ?? 'forky';
const PACKAGE = 'libonnxruntime-dev';

function fail(msg) {
  console.error(`fetch-ort-headers: ${msg}`);
  process.exit(1);
}

/** The Debian archive URI and keyring the machine already trusts (deb822 or one-line format). */
function systemDebianSource() {
  const candidates = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const file of candidates) {
    if (!fs.existsSync(file)) continue;
    const text = fs.readFileSync(file, 'utf8');
    const uri = /^URIs:\s*(\S+)/m.exec(text)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s/m.exec(text)?.[1];
    const keyring = /^Signed-By:\s*(\S+)/m.exec(text)?.[1] ?? /signed-by=([^\s\]]+)/.exec(text)?.[1];
    if (uri && !uri.includes('security')) return { uri, keyring: keyring ?? '/usr/share/keyrings/debian-archive-keyring.gpg' };
  }
  fail('no Debian archive found in /etc/apt sources; install libonnxruntime-dev headers by hand into .deps/ort-headers');
}

if (fs.existsSync(header) && !process.argv.includes('--force')) process.exit(0);

for (const tool of ['apt-get', 'dpkg']) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    fail(`${tool} not found: the ORT headers come from Debian's ${PACKAGE} package`);
  }
}

const { uri, keyring } = systemDebianSource();
const work = path.join(root, '.deps', 'apt');
fs.rmSync(work, { recursive: true, force: true });
for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) fs.mkdirSync(path.join(work, d), { recursive: true });
const sources = path.join(work, 'sources.list');
fs.writeFileSync(sources, `deb [signed-by=${keyring}] ${uri} ${SUITE} main\n`);
const opts = [
  `-o`, `Dir::Etc::SourceList=${sources}`,
  `-o`, `Dir::Etc::SourceParts=/dev/null`,
  `-o`, `Dir::State::Lists=${path.join(work, 'lists')}`,
  `-o`, `Dir::Cache=${path.join(work, 'cache')}`,
  `-o`, `Dir::State::status=/dev/null`,
  // Only the package index is needed, not translations or AppStream metadata.
  `-o`, `Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false`,
  `-o`, `Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false`,
  `-o`, `Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false`,
  `-o`, `Acquire::Languages=none`,
  `-o`, `APT::Sandbox::User=root`,
];
const run = (args, cwd) => {
  try {
    return execFileSync('apt-get', [...opts, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  } catch (err) {
    fail(`apt-get ${args[0]} failed: ${String(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' | ')}`);
  }
};
console.error(`fetch-ort-headers: downloading ${PACKAGE} from ${SUITE}`);
run(['-q', 'update']);
run(['-q', 'download', PACKAGE], path.join(work, 'debs'));
const deb = fs.readdirSync(path.join(work, 'debs')).find((f) => f.endsWith('.deb'));
if (!deb) fail(`apt-get download produced no ${PACKAGE} .deb`);
fs.rmSync(dest, { recursive: true, force: true });
execFileSync('dpkg', ['-x', path.join(work, 'debs', deb), dest]);
if (!fs.existsSync(header)) fail(`${deb} has no onnxruntime_c_api.h`);
fs.rmSync(work, { recursive: true, force: true });
console.error(`fetch-ort-headers: ${deb} unpacked into ${path.relative(root, dest)}`);
