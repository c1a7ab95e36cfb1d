import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readPromptsCsv, writePromptsCsv } from '../src/submission/prompts-csv.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { expectBadInput, listDir } from './helpers/submission-fakes.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-prompts-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function csvFile(content: string | Buffer, name = 'prompts.csv'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

describe('readPromptsCsv', () => {
  it('reads the Kaggle sample prompts, including a quoted prompt with commas and doubled quotes', async () => {
    const rows = await readPromptsCsv(path.join(KAGGLE_SAMPLE, 'prompts.csv'));
    expect(rows).toHaveLength(7);
    expect(rows[0]).toEqual({ imgId: '20057f34d', prompt: 'hyper realistic photo of very friendly and dystopian crater' });
    expect(rows[6].imgId).toBe('f27825b2c');
    expect(rows[6].prompt).toBe(
      'Kaggle employee Phil at a donut shop ordering all the best donuts, with a speech bubble that proclaims "Donuts. It\'s what\'s for dinner!"',
    );
  });

  it('accepts columns in any order plus extra columns', async () => {
    const file = csvFile('seed,prompt,imgId\n1,a red cat,img_1\n2,"a dog, running",img_2\n');
    expect(await readPromptsCsv(file)).toEqual([
      { imgId: 'img_1', prompt: 'a red cat' },
      { imgId: 'img_2', prompt: 'a dog, running' },
    ]);
  });

  it('accepts a BOM, CRLF line endings, blank lines and a missing final newline', async () => {
    const file = csvFile(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('imgId,prompt\r\n\r\na,one\r\nb,"two\r\nlines"\r\nc,three')]));
    expect(await readPromptsCsv(file)).toEqual([
      { imgId: 'a', prompt: 'one' },
      { imgId: 'b', prompt: 'two\nlines' },
      { imgId: 'c', prompt: 'three' },
    ]);
  });

  it('keeps non-ASCII prompts intact', async () => {
    const file = csvFile('imgId,prompt\nx1,café by Hokusai — 葛飾北斎 🌊\n');
    expect((await readPromptsCsv(file))[0].prompt).toBe('café by Hokusai — 葛飾北斎 🌊');
  });
});

describe('readPromptsCsv rejects bad input, naming the file and the line', () => {
  it('unclosed quote', async () => {
    const file = csvFile('imgId,prompt\na,fine\nb,"never closed\nc,more\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 3: unclosed quote/);
  });

  it('text after a closing quote', async () => {
    const file = csvFile('imgId,prompt\na,"say "hi" now"\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 2: unexpected text after a closing quote/);
  });

  it('quote inside an unquoted field', async () => {
    const file = csvFile('imgId,prompt\na,fine\nb,a "quoted" word\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 3: quote inside an unquoted field/);
  });

  it('missing prompt column', async () => {
    const file = csvFile('imgId,text\na,b\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 1: header has no "prompt" column \(found "imgId", "text"\)/);
  });

  it('missing imgId column (header names are case-sensitive, as in Kaggle)', async () => {
    const file = csvFile('ImgId,prompt\na,b\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 1: header has no "imgId" column/);
  });

  it('a header naming a column twice', async () => {
    const file = csvFile('imgId,prompt,prompt\na,b,c\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 1: header has more than one "prompt" column/);
  });

  it('too many fields', async () => {
    const file = csvFile('imgId,prompt\na,ok\nb,a cat, a dog\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 3: expected 2 fields like the header, got 3/);
  });

  it('too few fields', async () => {
    const file = csvFile('imgId,prompt\na,ok\nb\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 3: expected 2 fields like the header, got 1/);
  });

  it('reports the right line after a multi-line quoted field in a CRLF file', async () => {
    const file = csvFile('imgId,prompt\r\na,"x\r\ny"\r\n\r\nb,z,extra\r\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 5: expected 2 fields/);
  });

  it('duplicate imgId, naming both lines', async () => {
    const file = csvFile('imgId,prompt\na,one\nb,two\na,three\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 4: duplicate imgId "a" \(first on line 2\)/);
  });

  it('empty prompt', async () => {
    const file = csvFile('imgId,prompt\na,one\nb,\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 3: empty prompt for imgId "b"/);
  });

  it('blank (whitespace-only) prompt', async () => {
    const file = csvFile('imgId,prompt\na,"   "\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 2: empty prompt for imgId "a"/);
  });

  it('empty imgId', async () => {
    const file = csvFile('imgId,prompt\na,one\n,two\n');
    await expectBadInput(readPromptsCsv(file), file, /^line 3: empty imgId/);
  });

  it('imgId with whitespace, a comma or a quote', async () => {
    await expectBadInput(readPromptsCsv(csvFile('imgId,prompt\n"a b",x\n', '1.csv')), path.join(dir, '1.csv'), /^line 2: invalid imgId "a b": contains whitespace/);
    await expectBadInput(readPromptsCsv(csvFile('imgId,prompt\n"a,b",x\n', '2.csv')), path.join(dir, '2.csv'), /^line 2: invalid imgId "a,b": contains a comma/);
    await expectBadInput(readPromptsCsv(csvFile('imgId,prompt\n"a""b",x\n', '3.csv')), path.join(dir, '3.csv'), /^line 2: invalid imgId "a\\"b": contains a quote/);
  });

  it('invalid UTF-8, naming the line', async () => {
    const file = csvFile(Buffer.concat([Buffer.from('imgId,prompt\na,ok\nb,caf'), Buffer.from([0xe9]), Buffer.from(' latin-1\n')]));
    await expectBadInput(readPromptsCsv(file), file, /^line 3: invalid UTF-8/);
  });

  it('empty file', async () => {
    const file = csvFile('');
    await expectBadInput(readPromptsCsv(file), file, /^empty file/);
  });

  it('file of blank lines', async () => {
    const file = csvFile('\r\n\n  \n');
    await expectBadInput(readPromptsCsv(file), file, /^empty file/);
  });

  it('header but no rows', async () => {
    const file = csvFile('imgId,prompt\n');
    await expectBadInput(readPromptsCsv(file), file, /^no rows after the header/);
  });

  it('missing file and directory', async () => {
    const missing = path.join(dir, 'nope.csv');
    await expectBadInput(readPromptsCsv(missing), missing, /^cannot read: no such file/);
    await expectBadInput(readPromptsCsv(dir), dir, /^cannot read: is a directory/);
  });
});

describe('writePromptsCsv', () => {
  const tricky = [
    { imgId: 'plain', prompt: 'a cat on a mat' },
    { imgId: 'comma', prompt: 'a cat, a mat' },
    { imgId: 'quotes', prompt: 'a "quoted" cat' },
    { imgId: 'newline', prompt: 'two\nlines' },
    { imgId: 'edge_space', prompt: ' padded ' },
    { imgId: 'unicode', prompt: 'café 葛飾北斎 🌊' },
  ];

  it('round-trips tricky prompts and quotes only where needed', async () => {
    const file = path.join(dir, 'out.csv');
    await writePromptsCsv(file, tricky);
    expect(await readPromptsCsv(file)).toEqual(tricky);
    const text = fs.readFileSync(file, 'utf8');
    expect(text.startsWith('imgId,prompt\nplain,a cat on a mat\ncomma,"a cat, a mat"\nquotes,"a ""quoted"" cat"\n')).toBe(true);
    expect(listDir(dir)).toEqual(['out.csv']);
  });

  it('refuses bad rows before writing anything, keeping an existing file', async () => {
    const file = path.join(dir, 'out.csv');
    fs.writeFileSync(file, 'old content');
    await expectBadInput(writePromptsCsv(file, [{ imgId: 'a', prompt: 'x' }, { imgId: 'a', prompt: 'y' }]), file, /row 2: duplicate imgId "a"/);
    await expectBadInput(writePromptsCsv(file, [{ imgId: 'a b', prompt: 'x' }]), file, /row 1: invalid imgId/);
    await expectBadInput(writePromptsCsv(file, [{ imgId: 'a', prompt: ' ' }]), file, /row 1: empty prompt/);
    await expectBadInput(writePromptsCsv(file, []), file, /no rows/);
    expect(fs.readFileSync(file, 'utf8')).toBe('old content');
    expect(listDir(dir)).toEqual(['out.csv']);
  });

  it('names the file when its folder does not exist, leaving nothing behind', async () => {
    const file = path.join(dir, 'missing', 'out.csv');
    await expectBadInput(writePromptsCsv(file, tricky), file, /^cannot write/);
    expect(listDir(dir)).toEqual([]);
  });
});
