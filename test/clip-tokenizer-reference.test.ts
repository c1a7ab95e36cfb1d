import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../src/clip/tokenizer.js';
import { ClipBpe, CLIP_MERGE_COUNT, clipVocabFromMerges } from '../src/clip/bpe.js';
import type { ClipTokenizerKind } from '../src/clip/pre-tokenize.js';
import { ClipModel } from '../src/clip/model.js';
import { tinyClipConfig } from '../src/clip/config.js';
import { writeRandomCheckpoint } from '../src/clip/random-checkpoint.js';
import { readLabelFile, standardBanks } from '../src/interrogate/label-banks.js';
import { defaultPromptCorpus } from '../src/predict/prompt-bank-cache.js';
import { asset, tempDir } from './helpers/paths.js';

/**
 * The engine's CLIP ids against the reference implementations' (scripts/fixtures/clip_tokens.py):
 * open_clip's SimpleTokenizer for open_clip checkpoints, transformers' CLIPTokenizer for HF ones, on
 * every label-bank and prompt-corpus text the engine encodes plus hard cases. The fixture lists only
 * the texts whose reference ids differ from plain BPE; the full reference list is rebuilt here and
 * checked against the sha256 the script recorded, so every text is compared.
 */

interface Fixture {
  contextLength: number;
  hardCases: string[];
  sources: { name: string; count: number; textsSha256: string }[];
  tokenizers: Record<ClipTokenizerKind, { texts: number; idsSha256: string; differences: [number, number, number[]][] }>;
}

const fixture = JSON.parse(fs.readFileSync(path.join('test', 'fixtures', 'clip-tokenizer', 'reference-ids.json'), 'utf-8')) as Fixture;
const BPE_GZ = asset('tokenizers', 'clip', 'bpe_simple_vocab_16e6.txt.gz');
const HF_DIR = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
const REFERENCE: Record<ClipTokenizerKind, string> = { open_clip: "open_clip's SimpleTokenizer", hf: "transformers' CLIPTokenizer" };

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The texts of each fixture source, read the way the engine reads them. */
async function engineTexts(): Promise<string[][]> {
  const banks = new Map((await standardBanks(asset('labels'))).map((b) => [`bank:${b.name}`, b.labels]));
  return Promise.all(
    fixture.sources.map(async ({ name }) => {
      if (name === 'hard-cases') return fixture.hardCases;
      if (name.startsWith('bank:')) return banks.get(name) ?? [];
      if (name.startsWith('file:')) return readLabelFile(asset(...name.slice('file:'.length).split('/')));
      throw new Error(`unknown fixture source ${name}`);
    }),
  );
}

/** Plain BPE as the script defines it: lower-cased text, CLIP's word split, no other cleaning. */
function plainBpe(): (text: string) => number[] {
  const merges = gunzipSync(fs.readFileSync(BPE_GZ)).toString('utf-8').split('\n').slice(1, 1 + CLIP_MERGE_COUNT);
  const bpe = new ClipBpe(clipVocabFromMerges(merges), merges);
  const words = /'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/gu;
  return (text) => {
    const body = (text.toLowerCase().match(words) ?? []).flatMap((w) => bpe.encodeWord(w));
    return [49406, ...body.slice(0, fixture.contextLength - 2), 49407];
  };
}

let texts: string[][];
const reference = {} as Record<ClipTokenizerKind, number[][][]>;

beforeAll(async () => {
  texts = await engineTexts();
  const plain = plainBpe();
  const plainIds = texts.map((list) => list.map(plain));
  for (const kind of ['open_clip', 'hf'] as const) {
    const ids = plainIds.map((list) => list.slice());
    for (const [s, i, diff] of fixture.tokenizers[kind].differences) ids[s]![i] = diff;
    reference[kind] = ids;
  }
});

/** Texts whose engine ids differ from the reference, with both id lists (the first few) and the count. */
function mismatches(tokenizer: ClipTokenizer, kind: ClipTokenizerKind): { count: number; examples: string[] } {
  let count = 0;
  const examples: string[] = [];
  texts.forEach((list, s) =>
    list.forEach((text, i) => {
      const got = tokenizer.encode(text);
      const want = reference[kind][s]![i]!;
      if (got.length === want.length && got.every((id, k) => id === want[k])) return;
      count++;
      if (examples.length < 5) examples.push(`${fixture.sources[s]!.name}[${i}] ${JSON.stringify(text)}: got ${got.join(',')}, want ${want.join(',')}`);
    }),
  );
  return { count, examples };
}

describe('CLIP tokenizer fixtures', () => {
  it('cover exactly the texts the engine encodes: label banks as built, every corpus and krea list file', async () => {
    const corpus = (await defaultPromptCorpus(asset('eval', 'prompts'))).map((f) => `file:eval/prompts/${path.basename(f)}`);
    const krea = fs.readdirSync(asset('labels', 'krea-modifiers')).filter((f) => f.endsWith('.txt')).map((f) => `file:labels/krea-modifiers/${f}`);
    const names = fixture.sources.map((s) => s.name);
    for (const name of [...corpus, ...krea, 'bank:artists', 'bank:flavors', 'bank:trendings', 'hard-cases']) expect(names).toContain(name);
    texts.forEach((list, s) => {
      const { name, count, textsSha256 } = fixture.sources[s]!;
      expect({ name, count: list.length, sha256: sha256(list.join('\n')) }).toEqual({ name, count, sha256: textsSha256 });
    });
    expect(texts.flat().length).toBeGreaterThan(120_000);
  });

  for (const kind of ['open_clip', 'hf'] as const) {
    it(`rebuild ${REFERENCE[kind]}'s full id list from plain BPE and the listed differences (sha256)`, () => {
      const lines = reference[kind].flat().map((ids) => `${ids.join(',')}\n`);
      expect(lines).toHaveLength(fixture.tokenizers[kind].texts);
      expect(sha256(lines.join(''))).toBe(fixture.tokenizers[kind].idsSha256);
    });
  }
});

describe('ClipTokenizer against the reference implementations', () => {
  const cases: { kind: ClipTokenizerKind; files: string; location: string }[] = [
    { kind: 'open_clip', files: 'bpe_simple_vocab_16e6.txt.gz', location: BPE_GZ },
    { kind: 'open_clip', files: 'HF tokenizer.json', location: HF_DIR },
    { kind: 'hf', files: 'HF tokenizer.json', location: HF_DIR },
  ];
  for (const { kind, files, location } of cases) {
    it(`kind ${kind} (${files}): 0 mismatches against ${REFERENCE[kind]} on every fixture text`, async () => {
      const tokenizer = await ClipTokenizer.load(location, { kind });
      const { count, examples } = mismatches(tokenizer, kind);
      expect(examples).toEqual([]);
      expect(count).toBe(0);
    });
  }

  it("an HF folder without tokenizer.json (vocab.json, merges.txt, tokenizer_config.json) matches transformers' too", async () => {
    const dir = tempDir('img2prompt-clip-vocab-');
    try {
      for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json']) fs.copyFileSync(path.join(HF_DIR, f), path.join(dir, f));
      const tokenizer = await ClipTokenizer.load(dir, { kind: 'hf' });
      const hard = fixture.sources.findIndex((s) => s.name === 'hard-cases');
      const got = fixture.hardCases.map((t) => tokenizer.encode(t));
      expect(got).toEqual(reference.hf[hard]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('each kind differs from the other reference on the texts where the references disagree', async () => {
    const hard = fixture.sources.findIndex((s) => s.name === 'hard-cases');
    const differing = fixture.hardCases.filter((_, i) => JSON.stringify(reference.open_clip[hard]![i]) !== JSON.stringify(reference.hf[hard]![i]));
    expect(differing.length).toBeGreaterThan(40);
    const oc = await ClipTokenizer.load(BPE_GZ, { kind: 'open_clip' });
    const hf = await ClipTokenizer.load(HF_DIR, { kind: 'hf' });
    for (const text of differing) expect(oc.encode(text)).not.toEqual(hf.encode(text));
  });
});

describe('ClipModel picks the tokenizer of its checkpoint layout', () => {
  const root = tempDir('img2prompt-clip-kind-');
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  const hard = () => fixture.sources.findIndex((s) => s.name === 'hard-cases');

  for (const layout of ['open_clip', 'hf'] as const) {
    it(`a ${layout} checkpoint encodes as ${REFERENCE[layout]}, unless told otherwise`, async () => {
      const dir = path.join(root, layout);
      await writeRandomCheckpoint(dir, tinyClipConfig(), 3, layout);
      // The same HF tokenizer files for both layouts: the layout, not the files, decides the cleaning.
      fs.copyFileSync(path.join(HF_DIR, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
      const model = await ClipModel.open(dir, { towers: ['text'], sessionOptions: { providers: ['cpu'] } });
      try {
        expect(model.tokenizer!.kind).toBe(layout);
        expect(fixture.hardCases.map((t) => model.tokenizer!.encode(t))).toEqual(reference[layout][hard()]);
      } finally {
        model.close();
      }
      const other = layout === 'open_clip' ? 'hf' : 'open_clip';
      const overridden = await ClipModel.open(dir, { towers: ['text'], sessionOptions: { providers: ['cpu'] }, tokenizerKind: other });
      try {
        expect(overridden.tokenizer!.kind).toBe(other);
        expect(fixture.hardCases.map((t) => overridden.tokenizer!.encode(t))).toEqual(reference[other][hard()]);
        expect(overridden.tokenizerId).not.toBe((await ClipTokenizer.load(dir, { kind: layout })).identity);
      } finally {
        overridden.close();
      }
    });
  }

  it('rebuilds a graph cache recorded before the layout was, so an old model still gets its tokenizer', async () => {
    const dir = path.join(root, 'legacy');
    await writeRandomCheckpoint(dir, tinyClipConfig(), 4, 'open_clip');
    fs.copyFileSync(path.join(HF_DIR, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    (await ClipModel.open(dir, { towers: ['text'], sessionOptions: { providers: ['cpu'] } })).close();
    const sidecar = path.join(dir, 'clip-onnx.json');
    const { layout, ...old } = JSON.parse(fs.readFileSync(sidecar, 'utf-8')) as { layout: string };
    expect(layout).toBe('open_clip');
    fs.writeFileSync(sidecar, JSON.stringify(old));
    const model = await ClipModel.open(dir, { towers: ['text'], sessionOptions: { providers: ['cpu'] } });
    try {
      expect(model.tokenizer!.kind).toBe('open_clip');
      expect((JSON.parse(fs.readFileSync(sidecar, 'utf-8')) as { layout: string }).layout).toBe('open_clip');
    } finally {
      model.close();
    }
  });
});
