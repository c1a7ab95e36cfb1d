import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

/** package.json's `exports` map, checked against the sources it is built from (dist/src/X.js ← src/X.ts). */
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { exports: Record<string, string | { types: string; default: string }> };

function sourceOf(subpath: string): string {
  const target = pkg.exports[subpath];
  if (typeof target !== 'object') throw new Error(`exports["${subpath}"] is not a conditions object`);
  expect(target.types).toBe(target.default.replace(/\.js$/, '.d.ts'));
  return target.default.replace(/^\.\/dist\//, './').replace(/\.js$/, '.ts');
}

describe('package exports map', () => {
  it('has only the front doors, the runtime and package.json', () => {
    expect(Object.keys(pkg.exports)).toEqual(['.', './runtime', './package.json']);
  });

  it('"." holds the front doors and not the low-level runtime', async () => {
    const file = sourceOf('.');
    expect(file).toBe('./src/index.ts');
    const front = await import(`../${file}`);
    for (const name of ['predict', 'PredictEngine', 'interrogate', 'InterrogateEngine', 'writeSubmission', 'readSubmission', 'readPromptsCsv', 'validateSubmission', 'score', 'Img2PromptError', 'createServer']) {
      expect(typeof front[name], name).toBe('function');
    }
    for (const name of ['Session', 'tensor', 'topk', 'bottomk']) expect(front, name).not.toHaveProperty(name);
  });

  it('"./runtime" holds Session, tensor and topk', async () => {
    const file = sourceOf('./runtime');
    expect(file).toBe('./src/runtime/index.ts');
    const runtime = await import(`../${file}`);
    for (const name of ['Session', 'tensor', 'availableProviders', 'ortVersion', 'topk', 'bottomk']) expect(typeof runtime[name], name).toBe('function');
  });
});
