// ml_ort.js - onnxruntime-node timings of the bench/ml.sh TreeEnsemble model: median wall time
// and mean CPU time (process.cpuUsage, includes the Node binding) of one run for a batch of 1 and
// of 1000 rows, one intra-op thread. Usage: node ml_ort.js DIR
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tests', 'fixtures', 'onnx_ml', 'node_modules', 'onnxruntime-node'));

function median(a) { a.sort((x, y) => x - y); return a[a.length >> 1]; }

async function time(session, x, rows, reps) {
  const feeds = { X: new ort.Tensor('float32', x.subarray(0, rows * 20), [rows, 20]) };
  for (let i = 0; i < 20; i++) await session.run(feeds);
  const t = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const c = process.cpuUsage(c0);
  return [median(t), (c.user + c.system) / 1000 / reps];
}

(async () => {
  const dir = process.argv[2];
  const buf = fs.readFileSync(path.join(dir, 'x.f32'));
  const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const t0 = process.hrtime.bigint();
  const s = await ort.InferenceSession.create(path.join(dir, 'model.onnx'),
    { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const load = Number(process.hrtime.bigint() - t0) / 1e6;
  const [one, oneCpu] = await time(s, x, 1, 2000);
  const [batch, batchCpu] = await time(s, x, 1000, 100);
  console.log(`onnxruntime ${ort.env.versions.common}: load ${load.toFixed(2)} ms\n` +
              `  1 row ${(one * 1000).toFixed(1)} us wall ${(oneCpu * 1000).toFixed(1)} us cpu\n` +
              `  1000 rows ${batch.toFixed(3)} ms wall ${batchCpu.toFixed(3)} ms cpu`);
})();
