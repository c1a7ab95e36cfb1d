import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixText } from '../src/text/fix-text.js';
import { unescapeHtml } from '../src/text/html-unescape.js';
import { fixMojibake, looksLikeMojibake } from '../src/text/mojibake.js';
import { openClipClean } from '../src/clip/pre-tokenize.js';
import { lowercaseEachChar } from '../src/text/lowercase.js';

/**
 * The cleaning steps against the Python references on the hard cases of the CLIP tokenizer fixture
 * (scripts/fixtures/clip_tokens.py records ftfy.fix_text, html.unescape and open_clip's _clean_lower
 * of each), plus the behaviours those cases are chosen for, spelt out.
 */

const fixture = JSON.parse(fs.readFileSync(path.join('test', 'fixtures', 'clip-tokenizer', 'reference-ids.json'), 'utf-8')) as {
  hardCases: string[];
  hardCaseText: { ftfyFixText: string[]; htmlUnescape: string[]; openClipClean: string[] };
};

function differences(fn: (t: string) => string, want: string[]): string[] {
  return fixture.hardCases.flatMap((t, i) => (fn(t) === want[i] ? [] : [`${JSON.stringify(t)} → ${JSON.stringify(fn(t))}, want ${JSON.stringify(want[i])}`]));
}

describe('text cleaning against the Python references', () => {
  it(`fixText equals ftfy.fix_text on all ${fixture.hardCases.length} hard cases`, () => {
    expect(differences(fixText, fixture.hardCaseText.ftfyFixText)).toEqual([]);
  });

  it("unescapeHtml equals Python's html.unescape", () => {
    expect(differences(unescapeHtml, fixture.hardCaseText.htmlUnescape)).toEqual([]);
  });

  it("openClipClean equals open_clip's _clean_lower (ftfy, unescape twice, whitespace, lower case)", () => {
    expect(differences(openClipClean, fixture.hardCaseText.openClipClean)).toEqual([]);
  });
});

describe('fixText', () => {
  it('straightens quotes, narrows full-width forms, spells out ligatures, drops control characters', () => {
    expect(fixText('roger deakin’s “cinematography”')).toBe('roger deakin\'s "cinematography"');
    expect(fixText('ＡＲＴ　ｓｔａｔｉｏｎ，')).toBe('ART station,');
    expect(fixText('ﬁne ﬂowers')).toBe('fine flowers');
    expect(fixText('\x08moebius\ufeff')).toBe('moebius');
  });

  it('decodes HTML entities only outside HTML: after a "<" on this or an earlier line they stay', () => {
    expect(fixText('rock &amp; roll')).toBe('rock & roll');
    expect(fixText('<b>rock &amp; roll</b>')).toBe('<b>rock &amp; roll</b>');
    expect(fixText('a &amp; b\n<p>\nc &amp; d')).toBe('a & b\n<p>\nc &amp; d');
    expect(fixText('this&not that')).toBe('this&not that');
  });
});

describe('mojibake repair', () => {
  it('repairs UTF-8 read as Latin-1 or Windows-1252, also twice over', () => {
    expect(fixMojibake('cafÃ© au lait')).toBe('café au lait');
    expect(fixMojibake('donâ€™t')).toBe('don’t');
    expect(fixMojibake('ðŸŽ¨')).toBe('🎨');
    expect(fixMojibake('Ã¢â‚¬â„¢')).toBe('’');
    expect(fixMojibake('Pokémon Ã©tÃ©')).toBe('Pokémon été');
  });

  it('leaves legitimate accented text alone', () => {
    for (const text of ['naïve café', 'Straße—the', 'José’s', 'Łódź…', 'IRMÃ SILVA', '5×½']) {
      expect(looksLikeMojibake(text) && fixMojibake(text) !== text ? text : '').toBe('');
    }
  });
});

describe('lowercaseEachChar', () => {
  it('is toLowerCase without the final-sigma rule', () => {
    expect('ΣΟΦΟΣ'.toLowerCase()).toBe('σοφος');
    expect(lowercaseEachChar('ΣΟΦΟΣ')).toBe('σοφοσ');
    expect(lowercaseEachChar('İSTANBUL ǅ')).toBe('İSTANBUL ǅ'.toLowerCase());
  });
});
