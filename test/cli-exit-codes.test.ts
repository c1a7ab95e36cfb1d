// The CLI's exit codes (run in-process through main()): bad input gives exit code != 0, exactly one stderr line `img2prompt: <file>: <reason>`,
// and no output (nor temp) file; `--help` works for every command.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelDir } from '../src/models/cache.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';

const work = tempDir('img2prompt-cli-exit-');
/** An empty model cache: every case below fails before a model would be needed. */
const emptyHome = path.join(work, 'empty-home');

// No stack traces: the tests check that stderr is exactly one line.
const NO_DEBUG = { env: { IMG2PROMPT_DEBUG: '' } };
const cli = (args: string[], home = emptyHome): Promise<CliResult> => runCliInProcess(args, home, NO_DEBUG);

/** Exit code 1 and a single stderr line naming `file`, whose reason matches `reason`. */
function expectOneLineError(r: CliResult, file: string, reason: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  const prefix = `img2prompt: ${file}: `;
  expect(lines[0]!.startsWith(prefix), lines[0]).toBe(true);
  expect(lines[0]!.slice(prefix.length)).toMatch(reason);
}

/** A fresh, empty output folder per case, so "nothing left behind" means "still empty". */
function outDir(name: string): string {
  const dir = path.join(work, 'out', name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function writeInput(name: string, content: string | Buffer): string {
  const file = path.join(work, 'in', name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

beforeAll(() => fs.mkdirSync(emptyHome));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('img2prompt embed: a bad prompts CSV', () => {
  const cases: { name: string; content: string | Buffer; reason: RegExp }[] = [
    { name: 'bad-quoting.csv', content: 'imgId,prompt\na,"a cat on a mat\nb,a dog\n', reason: /^line 2: unclosed quote/ },
    { name: 'stray-quote.csv', content: 'imgId,prompt\na,a "cat" here\n', reason: /^line 2: quote inside an unquoted field/ },
    { name: 'duplicate-id.csv', content: 'imgId,prompt\nimg1,a cat\nimg2,a dog\nimg1,a bird\n', reason: /^line 4: duplicate imgId "img1" \(first on line 2\)$/ },
    { name: 'latin1.csv', content: Buffer.from('imgId,prompt\na,caf\xe9 au lait\n', 'latin1'), reason: /^line 2: invalid UTF-8/ },
    { name: 'no-prompt-column.csv', content: 'imgId,text\na,a cat\n', reason: /^line 1: header has no "prompt" column/ },
  ];
  for (const c of cases) {
    it(`${c.name}: exit 1, one line naming the file, no submission written`, async () => {
      const prompts = writeInput(c.name, c.content);
      const out = outDir(c.name);
      const r = await cli(['embed', '--prompts', prompts, '-o', path.join(out, 'submission.csv')]);
      expectOneLineError(r, prompts, c.reason);
      expect(r.stdout).toBe('');
      expect(fs.readdirSync(out)).toEqual([]);
    });
  }

  it('a missing prompts CSV: exit 1, one line naming it', async () => {
    const missing = path.join(work, 'in', 'nope.csv');
    const out = outDir('missing');
    expectOneLineError(await cli(['embed', '--prompts', missing, '-o', path.join(out, 's.csv')]), missing, /^cannot read: no such file$/);
    expect(fs.readdirSync(out)).toEqual([]);
  });

  it('an output folder that does not exist: exit 1, one line naming the output', async () => {
    const target = path.join(work, 'no-such-folder', 'submission.csv');
    const r = await cli(['embed', '--prompts', path.join(KAGGLE_SAMPLE, 'prompts.csv'), '-o', target]);
    expectOneLineError(r, target, new RegExp(`^output folder ${path.dirname(target).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not exist$`));
    expect(fs.existsSync(path.dirname(target))).toBe(false);
  });

  it('leaves an existing output file untouched when the input is bad', async () => {
    const prompts = writeInput('dup-again.csv', 'imgId,prompt\nx,a\nx,b\n');
    const out = outDir('existing');
    const target = path.join(out, 'submission.csv');
    fs.writeFileSync(target, 'previous contents\n');
    expectOneLineError(await cli(['embed', '--prompts', prompts, '-o', target]), prompts, /duplicate imgId "x"/);
    expect(fs.readdirSync(out)).toEqual(['submission.csv']);
    expect(fs.readFileSync(target, 'utf8')).toBe('previous contents\n');
  });

  it('a usage error (no --prompts) exits 2 and names the option', async () => {
    const r = await cli(['embed', '-o', path.join(outDir('usage'), 's.csv')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--prompts <csv>' not specified");
  });
});

describe('img2prompt embed: corrupt MiniLM weights in the model cache', () => {
  const home = path.join(work, 'corrupt-home');
  const dir = path.join(home, 'models', 'minilm');
  const weights = path.join(dir, 'model.safetensors');
  beforeAll(async () => {
    // A full copy of the installed model (install record, built model.onnx and all), then one flipped bit.
    fs.cpSync(modelDir('minilm'), dir, { recursive: true });
    const fd = fs.openSync(weights, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, 12_345_678);
    b[0] ^= 0x01;
    fs.writeSync(fd, b, 0, 1, 12_345_678);
    fs.closeSync(fd);
  });

  it('exit 1, one line naming the weights and the sha256 mismatch, no submission, no model.onnx', async () => {
    const expected = '53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db';
    const got = createHash('sha256').update(fs.readFileSync(weights)).digest('hex');
    const out = outDir('corrupt-weights');
    const r = await cli(['embed', '--prompts', path.join(KAGGLE_SAMPLE, 'prompts.csv'), '-o', path.join(out, 'submission.csv')], home);
    expectOneLineError(r, weights, new RegExp(`^sha256 mismatch \\(corrupt weights\\): expected ${expected}, got ${got}; run \`img2prompt models pull minilm\` to repair$`));
    expect(fs.readdirSync(out)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'model.onnx'))).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('img2prompt score / models pull / validate: bad input', () => {
  it('score with a missing prediction file: exit 1, one line naming it, nothing on stdout', async () => {
    const missing = path.join(work, 'in', 'no-such-pred.csv');
    const r = await cli(['score', '--pred', missing, '--truth', path.join(KAGGLE_SAMPLE, 'prompts.csv')]);
    expectOneLineError(r, missing, /^cannot read: no such file$/);
    expect(r.stdout).toBe('');
  });

  it('models pull with IMG2PROMPT_HOME under a regular file: exit 1, one line naming the home (ENOTDIR), nothing created', async () => {
    const blocker = path.join(work, 'a-regular-file');
    fs.writeFileSync(blocker, 'x');
    const home = path.join(blocker, 'home');
    const r = await cli(['models', 'pull', 'minilm'], home);
    expectOneLineError(r, home, /^cannot create the model cache directory \(ENOTDIR: not a directory, mkdir .*\); set IMG2PROMPT_HOME to a writable directory$/);
    expect(fs.readFileSync(blocker, 'utf8')).toBe('x');
  });

  it('validate of a broken submission: exit 1, the verdict names the file, each problem listed, stderr quiet', async () => {
    const ids = Array.from({ length: 384 }, (_, e) => `imgA_${e},0.05`);
    ids[7] = 'imgA_7,NaN';
    const broken = writeInput('broken-submission.csv', `imgId_eId,val\n${ids.join('\n')}\nimgB_0,0.1\n`);
    const r = await cli(['validate', broken]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: INVALID submission, 3 problems \\(2 images, 385 rows\\)$`));
    expect(lines.slice(1)).toEqual([
      '  line 9: value "NaN" of imgA_7 is not a finite number',
      '  line 385: image "imgA" (from line 2) has 383 of 384 rows; missing eId 7',
      '  line 386: image "imgB" (from line 386) has 1 of 384 rows; missing eId 1, 2, 3, 4, 5, 6, 7, 8, ...',
    ]);
  });

  it('validate with a missing --ids file: exit 1, one line naming it', async () => {
    const missing = path.join(work, 'in', 'no-ids.txt');
    expectOneLineError(await cli(['validate', path.join(KAGGLE_SAMPLE, 'sample_submission.csv'), '--ids', missing]), missing, /^cannot read: no such file$/);
  });
});

/** Command names in the `Commands:` section of a help text (without `help` itself). */
function commandsIn(help: string): string[] {
  const section = help.split('\nCommands:\n')[1];
  if (section === undefined) return [];
  const names: string[] = [];
  for (const line of section.split('\n')) {
    if (line.trim() === '') break;
    const m = /^ {2}(\S+)/.exec(line); // continuation lines are indented further
    if (m && m[1] !== 'help') names.push(m[1]!);
  }
  return names;
}

describe('img2prompt --help', () => {
  it('every command and subcommand listed by --help prints its usage and a description, exit 0', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    const commands = commandsIn(top.stdout);
    // The commands the issue asks for are all there (others may be added).
    for (const c of ['models', 'embed', 'validate', 'score']) expect(commands).toContain(c);
    const helps = new Map<string, CliResult>();
    const run = async (paths: string[][]) => {
      for (let i = 0; i < paths.length; i += 2) {
        const batch = paths.slice(i, i + 2);
        const results = await Promise.all(batch.map((p) => cli([...p, '--help'])));
        batch.forEach((p, j) => helps.set(p.join(' '), results[j]!));
      }
    };
    await run(commands.map((c) => [c]));
    const subcommands = commands.flatMap((c) => commandsIn(helps.get(c)!.stdout).map((s) => [c, s]));
    expect(subcommands.length).toBeGreaterThan(0); // `models` has subcommands
    await run(subcommands);
    const paths = [...commands.map((c) => [c]), ...subcommands];
    for (const p of paths) {
      const r = helps.get(p.join(' '))!;
      expect(r.code, `${p.join(' ')} --help: ${r.stderr}`).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines[0], p.join(' ')).toMatch(new RegExp(`^Usage: img2prompt ${p.join(' ')}( |$)`));
      // Commander prints the description after one blank line.
      expect(lines[1], p.join(' ')).toBe('');
      expect(lines[2]?.trim().length ?? 0, `${p.join(' ')} has no description`).toBeGreaterThan(10);
      expect(lines[2]).not.toMatch(/^Options:/);
    }
  });
});
