// ClipTokenizer.countTokensJoined: the token count of "prefix + joiner + addition" from the prefix's own
// count, which interrogate's fast mode and the chains' length filter use for every candidate label. It
// must equal counting the whole text, for both tokenizer kinds, on real prompts and labels, and on the
// texts where the join does change the words (punctuation against the joiner, entities, special-token
// names, non-ASCII, contractions), which must take the full count.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ClipTokenizer } from '../src/clip/tokenizer.js';
import type { ClipTokenizerKind } from '../src/clip/pre-tokenize.js';
import { bestMode, classicMode, fastMode, type InterrogatorBanks, type ModeContext } from '../src/interrogate/modes.js';
import type { BankRole, ClipTextSide } from '../src/interrogate/types.js';
import { PlantedTextSide, plantedBank, plantedImage } from './helpers/planted.js';
import { asset, tempDir } from './helpers/paths.js';

const HF_DIR = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');

function lines(file: string, n: number, every = 1): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '').filter((_, i) => i % every === 0).slice(0, n);
}

const PROMPTS = [
  ...lines(asset('eval', 'prompts', 'songjein-gpt4-kaggle-style-prompts.txt'), 60, 7),
  ...lines(asset('eval', 'prompts', 'krea-open-prompts-1k.prompts.txt'), 60, 9),
];
const LABELS = [
  ...lines(asset('labels', 'flavors.txt'), 80, 997),
  ...lines(asset('labels', 'artists.txt'), 40, 97),
  ...lines(asset('labels', 'mediums.txt'), 20, 3),
  ...lines(asset('labels', 'movements.txt'), 20, 3),
  ...lines(asset('labels', 'sites.txt'), 20),
  ...lines(asset('labels', 'negative.txt'), 20),
];
/** Texts whose join with a prompt changes its words or its cleaning: each needs the full count. */
const AWKWARD = [
  'by greg rutkowski!', '!!! dramatic', "'s portrait", "'t", '&amp; more', 'a &amp b', '<start_of_text> cat', 'cat <end_of_text>',
  '<|endoftext|> dog', ' leading space', 'trailing space ', 'two  spaces', 'naïve café', 'Ｆｕｌｌｗｉｄｔｈ', 'â€œmojibakeâ€\x9d', 'ﬁne ligature',
  'line\nbreak', 'tab\there', '5', '1990s', 'ΣΑΣ', 'İstanbul', '', ',', '...', '"quoted"', 'x\u00a0y', 'a\u200bb',
];
const JOINERS = [', ', ',', ' ', ' - ', '; ', ', a ', "'", '&', '<', ''];

/** Every prefix, grown the way fast mode grows a prompt, with every addition and joiner: joined count == whole count. */
function checkAll(tok: ClipTokenizer, prefixes: readonly string[], additions: readonly string[], joiners: readonly string[]): number {
  let checked = 0;
  for (const prefix of prefixes) {
    const prefixCount = tok.countTokens(prefix);
    for (const joiner of joiners) {
      for (const addition of additions) {
        const whole = tok.countTokens(prefix + joiner + addition);
        const joined = tok.countTokensJoined(prefix, prefixCount, joiner, addition);
        if (joined !== whole) throw new Error(`${JSON.stringify(prefix)} + ${JSON.stringify(joiner)} + ${JSON.stringify(addition)}: joined ${joined}, whole ${whole}`);
        checked++;
      }
    }
  }
  return checked;
}

describe.each(['open_clip', 'hf'] as ClipTokenizerKind[])('countTokensJoined (%s)', (kind) => {
  it('equals the whole count for real prompts and labels, with the joiners the modes use and others', async () => {
    const tok = await ClipTokenizer.load(HF_DIR, { kind });
    // Prompts grown label by label, as fast mode grows them.
    const grown = PROMPTS.slice(0, 40).map((p, i) => [p, ...LABELS.slice(i, i + 3)].join(', '));
    expect(checkAll(tok, [...PROMPTS, ...grown], LABELS, [', '])).toBe(160 * LABELS.length);
    expect(checkAll(tok, PROMPTS.slice(0, 30), [...LABELS.slice(0, 40), ...AWKWARD], JOINERS)).toBeGreaterThan(20_000);
    expect(checkAll(tok, [...AWKWARD, ...AWKWARD.map((a) => `a photo of ${a}`)], [...LABELS.slice(0, 20), ...AWKWARD], JOINERS)).toBeGreaterThan(20_000);
  });

  it('tokenizes only the joiner and the addition where the join cannot change the words, the whole text elsewhere', async () => {
    const tok = await ClipTokenizer.load(HF_DIR, { kind });
    const body = vi.spyOn(tok, 'encodeBody');
    const prefix = 'a portrait of a cat, oil on canvas';
    tok.countTokensJoined(prefix, tok.countTokens(prefix), ', ', 'by greg rutkowski');
    expect(body.mock.calls.at(-1)).toEqual([', by greg rutkowski']);
    for (const [p, j, a] of [[`${prefix}!`, ', ', 'x'], [prefix, ', ', '!x'], [prefix, ', ', 'café'], [prefix, ', ', 'a &amp; b'], [prefix, "'", 's x'], [prefix, ', ', 'x <end_of_text>']]) {
      tok.countTokensJoined(p!, tok.countTokens(p!), j!, a!);
      expect(body.mock.calls.at(-1)).toEqual([p! + j! + a!]);
    }
  });
});

describe('countTokensJoined with added tokens', () => {
  it('counts the whole text when a tokenizer.json adds a token that plain text can hold', async () => {
    const dir = tempDir('img2prompt-joined-');
    for (const f of fs.readdirSync(HF_DIR)) fs.copyFileSync(path.join(HF_DIR, f), path.join(dir, f));
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens: Record<string, unknown>[] };
    // "cat, by" spans the join: one added token in the whole, two words and a comma in the parts.
    json.added_tokens.push({ id: 320, content: 'cat, by', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    const tok = await ClipTokenizer.load(dir, { kind: 'hf' });
    const prefix = 'a photo of a cat';
    const whole = tok.countTokens(`${prefix}, by greg`);
    // Counting the parts would be wrong here: the added token takes three words' tokens as one.
    expect(tok.countTokens(prefix) + tok.countTokens(', by greg') - 2).toBe(whole + 2);
    expect(tok.countTokensJoined(prefix, tok.countTokens(prefix), ', ', 'by greg')).toBe(whole);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('the modes counting through countTokensJoined', () => {
  it('build the same prompts as counting every joined prompt in full, at the 77-token limit', async () => {
    const tok = await ClipTokenizer.load(HF_DIR, { kind: 'open_clip' });
    const side = new PlantedTextSide({ dim: 256 });
    // Real labels (the planted side splits prompts at ", ", so labels holding one are left out), with
    // some whose join needs the full count.
    const real = (file: string, n: number, every: number) => lines(asset('labels', file), n, every).filter((l) => !l.includes(','));
    const lists: Record<Exclude<BankRole, 'extra'>, string[]> = {
      artist: real('artists.txt', 120, 41).map((a) => `by ${a}`),
      flavor: [...real('flavors.txt', 600, 157), 'by greg rutkowski!', 'naïve café style', '&amp; friends', "kid's drawing"],
      medium: real('mediums.txt', 40, 2),
      movement: real('movements.txt', 40, 3),
      trending: real('sites.txt', 20, 1).map((x) => `trending on ${x}`),
      negative: real('negative.txt', 20, 1),
    };
    for (const labels of Object.values(lists)) side.know(labels);
    const bank = (name: string, role: BankRole, labels: string[]) => plantedBank(side, { name, role, labels, source: `${name}.txt` });
    const banks: InterrogatorBanks = {
      artists: bank('artists', 'artist', lists.artist), flavors: bank('flavors', 'flavor', lists.flavor),
      mediums: bank('mediums', 'medium', lists.medium), movements: bank('movements', 'movement', lists.movement),
      trendings: bank('trendings', 'trending', lists.trending), negative: bank('negative', 'negative', lists.negative), extras: [],
    };
    let joinedCalls = 0;
    const counting = (joined: boolean): ClipTextSide => ({
      modelId: side.modelId, weightHash: side.weightHash, tokenizerId: side.tokenizerId, dim: side.dim,
      encodeTexts: (texts) => side.encodeTexts(texts),
      countTokens: (text) => tok.countTokens(text),
      ...(joined ? { countTokensJoined: (p: string, c: number, j: string, a: string) => (joinedCalls++, tok.countTokensJoined(p, c, j, a)) } : {}),
    });
    const flavors = lists.flavor;
    let atLimit = 0;
    for (let i = 0; i < 8; i++) {
      const shown = [...flavors.slice(i * 30, i * 30 + 26), ...flavors.slice(-4), lists.artist[i]!, lists.medium[i]!];
      const images = {
        embeds: { data: plantedImage(side, shown, { seed: `img${i}` }), rows: 1, dim: side.dim },
        captions: [i % 2 === 0 ? PROMPTS[i]! : 'a photo of a ünïcode cat'],
      };
      const results = [];
      for (const joined of [true, false]) {
        const ctx: ModeContext = { text: counting(joined), banks };
        results.push([
          ...(await fastMode(ctx, images, { score: false, maxFlavors: 48 })),
          ...(await classicMode(ctx, images, { score: false })),
          ...(await bestMode(ctx, images, { maxFlavors: 40, shortlist: 256 })),
        ].map((r) => ({ prompt: r.prompt, labels: r.labels.map((l) => l.label) })));
      }
      expect(results[0]).toEqual(results[1]);
      if (results[0]!.some((r) => tok.countTokens(r.prompt) >= 70)) atLimit++;
    }
    expect(atLimit).toBeGreaterThanOrEqual(6);
    expect(joinedCalls).toBeGreaterThan(1000);
  });
});
