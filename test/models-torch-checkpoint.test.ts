import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTorchCheckpoint } from '../src/models/torch-checkpoint.js';
import { tensorToFloat32, type SafetensorsDType } from '../src/models/safetensors.js';
import { tempDir } from './helpers/paths.js';

/** Written by scripts/fixtures/torch_checkpoints.py with torch.save. */
const FIXTURES = path.resolve('test/fixtures/torch-checkpoints');
const fixture = (...p: string[]) => path.join(FIXTURES, ...p);

interface Expected {
  dtype: string;
  shape: number[];
  values: number[];
}
const VIEWS = JSON.parse(fs.readFileSync(fixture('views.json'), 'utf8')) as Record<string, Expected>;

const DTYPE_OF: Record<string, SafetensorsDType> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};

const scratch = tempDir('img2prompt-torch-ckpt-');
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe.each([
  ['zip archive (torch.save)', 'views.pt'],
  ['legacy stream (_use_new_zipfile_serialization=False)', 'views-legacy.pt'],
  ['zip archive with zip64 sizes and offsets (checkpoints over 4 GiB)', 'views-zip64.pt'],
])('%s', (_, file) => {
  it('reads every dtype and every kind of view with the values torch has', async () => {
    const st = await readTorchCheckpoint(fixture(file));
    expect([...st.tensors.keys()]).toEqual(Object.keys(VIEWS));
    for (const [name, want] of Object.entries(VIEWS)) {
      const t = st.tensors.get(name)!;
      expect(t.dtype, name).toBe(DTYPE_OF[want.dtype]);
      expect(t.shape, name).toEqual(want.shape);
      const got = t.dtype === 'F16' || t.dtype === 'BF16' ? Array.from(tensorToFloat32(t)) : Array.from(t.data as ArrayLike<number | bigint>, Number);
      expect(got, name).toEqual(want.values);
    }
  });

  it('keeps contiguous tensors as views into their storage and copies strided ones out', async () => {
    const st = await readTorchCheckpoint(fixture(file));
    const t = (n: string) => st.tensors.get(n)!;
    // base, base[2] and base.t() share one storage in the file.
    expect(t('row').bytes.buffer).toBe(t('contiguous').bytes.buffer);
    expect(t('row').bytes.byteOffset - t('contiguous').bytes.byteOffset).toBe(12 * 4);
    expect(t('transposed').bytes.buffer).not.toBe(t('contiguous').bytes.buffer);
  });
});

describe('state dicts', () => {
  it('unwraps an open_clip training checkpoint: its state_dict, without the "module." prefix, optimizer left out', async () => {
    const training = await readTorchCheckpoint(fixture('open_clip-legacy', 'epoch_3.pt'));
    const published = await readTorchCheckpoint(fixture('open_clip-fp16', 'open_clip_pytorch_model.bin'));
    expect([...training.tensors.keys()]).toEqual([...published.tensors.keys()]);
    expect(training.tensors.has('visual.conv1.weight')).toBe(true);
    for (const [name, t] of published.tensors) {
      expect(Buffer.from(training.tensors.get(name)!.bytes).equals(Buffer.from(t.bytes)), name).toBe(true);
    }
  });

  it('reads an overlapping strided view (the token table of the open_clip fixtures) as torch lays it out', async () => {
    const st = await readTorchCheckpoint(fixture('open_clip-fp32', 'open_clip_pytorch_model.bin'));
    const table = st.tensors.get('token_embedding.weight')!;
    expect(table.shape).toEqual([49408, 16]);
    const v = tensorToFloat32(table);
    // Stride (1, 1): row i is the base from element i on.
    for (const row of [1, 777, 49407]) expect(Array.from(v.subarray(row * 16, row * 16 + 15))).toEqual(Array.from(v.subarray((row - 1) * 16 + 1, row * 16)));
  });
});

describe('refusals', () => {
  it.each([
    ['evil-system.pt', 'posix.system'],
    ['evil-eval.pt', 'builtins.eval'],
  ])('%s: refuses the pickle, naming %s, and runs nothing', async (file, callable) => {
    const marker = path.join(scratch, `${file}.marker`);
    process.env.IMG2PROMPT_PICKLE_MARKER = marker;
    try {
      await expect(readTorchCheckpoint(fixture(file))).rejects.toThrow(
        `${fixture(file)}: refusing to unpickle ${callable}: only tensors, their storages and plain containers are allowed (nothing in the file was run)`,
      );
    } finally {
      delete process.env.IMG2PROMPT_PICKLE_MARKER;
    }
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('refuses a tensor that zero strides make too large to hold, instead of allocating it', async () => {
    await expect(readTorchCheckpoint(fixture('expanded-huge.pt'))).rejects.toThrow('expanded-huge.pt: tensor "w" of shape [134217728,134217728] is too large to hold');
  });

  it('names a missing checkpoint and the cause, the path once', async () => {
    const missing = path.join(scratch, 'absent.pt');
    await expect(readTorchCheckpoint(missing)).rejects.toMatchObject({ message: `${missing}: cannot read the checkpoint: no such file`, code: 'FILE_UNREADABLE' });
  });

  it('refuses a TorchScript archive by what it is', async () => {
    await expect(readTorchCheckpoint(fixture('torchscript.pt'))).rejects.toThrow(/torchscript\.pt: a TorchScript archive \(torch\.jit\.save/);
  });

  it('names the file and the problem for a truncated archive, a truncated legacy stream and a foreign file', async () => {
    const cut = (src: string, keep: number, name: string) => {
      const bytes = fs.readFileSync(fixture(src));
      const out = path.join(scratch, name);
      fs.writeFileSync(out, bytes.subarray(0, keep < 0 ? bytes.length + keep : keep));
      return out;
    };
    const zip = cut('hf-fp16/pytorch_model.bin', -200, 'cut-zip.bin');
    await expect(readTorchCheckpoint(zip)).rejects.toThrow(`${zip}: corrupt zip: no end-of-central-directory record`);
    const legacyHead = cut('views-legacy.pt', 300, 'cut-legacy-head.pt');
    await expect(readTorchCheckpoint(legacyHead)).rejects.toThrow(`${legacyHead}: truncated pickle`);
    const legacyData = cut('views-legacy.pt', -10, 'cut-legacy-data.pt');
    await expect(readTorchCheckpoint(legacyData)).rejects.toThrow(`${legacyData}: truncated`);
    const foreign = path.join(scratch, 'foreign.pt');
    fs.writeFileSync(foreign, 'not a checkpoint at all');
    await expect(readTorchCheckpoint(foreign)).rejects.toThrow(`${foreign}: not a PyTorch checkpoint: neither a torch.save zip archive nor its legacy format`);
    const safetensors = fixture('hf-fp16-safetensors', 'model.safetensors');
    await expect(readTorchCheckpoint(safetensors)).rejects.toThrow('not a PyTorch checkpoint');
  });
});
