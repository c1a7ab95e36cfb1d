// Fixed cost of one call on a trivial graph (Relu on 4 floats): the addon's async run() (a hop to a
// libuv pool thread and back), its runSync(), and onnxruntime-node (synchronous inside setImmediate).
//   node --import tsx bench/session-overhead.bench.ts
import * as ort from 'onnxruntime-node';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Session, tensor } from '../src/runtime/session.js';
import { GraphBuilder } from '../models/graph/onnx-builder.js';
const b = new GraphBuilder('id');
const x = b.input('x', 'float32', [1, 4]);
b.output(b.op('Relu', [x]), 'y', 'float32', [1, 4]);
const model = path.join(os.tmpdir(), 'img2prompt-overhead.onnx');
fs.writeFileSync(model, b.toBytes());
const ours = await Session.open(model, { providers: ['cpu'], intraOpThreads: 2 });
const theirs = await ort.InferenceSession.create(model, { intraOpNumThreads: 2 });
const data = new Float32Array(4);
for (let rep = 0; rep < 3; rep++) {
  let t = performance.now(); for (let i = 0; i < 2000; i++) await ours.run({ x: tensor('float32', data, [1, 4]) }); const o = (performance.now() - t) / 2000;
  t = performance.now(); for (let i = 0; i < 2000; i++) await theirs.run({ x: new ort.Tensor('float32', data, [1, 4]) }); const th = (performance.now() - t) / 2000;
  console.log(`per-call: ours ${(o * 1000).toFixed(1)} us, ort-node ${(th * 1000).toFixed(1)} us`);
}
for (let rep = 0; rep < 3; rep++) {
  const t = performance.now(); for (let i = 0; i < 2000; i++) ours.runSync({ x: tensor('float32', data, [1, 4]) }); const o = (performance.now() - t) / 2000;
  console.log(`per-call runSync: ${(o * 1000).toFixed(1)} us`);
}
