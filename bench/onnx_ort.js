// onnx_ort.js - time onnxruntime (npm onnxruntime-node, the official CPU build) on one model,
// the same way bench/onnx_bench.c times modeld, and print the same JSON line.
//
//   node onnx_ort.js MODEL.onnx INPUT.bin DIMS [--threads N] [--runs N] [--warmup N] [--out FILE]
//
// Wall time includes the Node binding (session.run is async), which is what a Node service pays;
// CPU time is the whole process's (every thread) per inference, from process.cpuUsage().
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const o = { threads: 1, runs: 200, warmup: 20, out: null };
  if (argv.length < 3) throw new Error('usage: onnx_ort.js MODEL INPUT.bin DIMS [--threads N] [--runs N] [--warmup N] [--out FILE]');
  [o.model, o.input, o.dims] = argv;
  for (let i = 3; i + 1 < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, ''), v = argv[i + 1];
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    o[k] = k === 'out' ? v : parseInt(v, 10);
  }
  return o;
}

function quantile(v, q) {
  const s = Float64Array.from(v).sort();
  return s[Math.round(q * (s.length - 1))];
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const dims = o.dims.split(',').map(Number);
  const buf = fs.readFileSync(o.input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
  const wall = [], cpu = [];
  for (let i = 0; i < o.warmup + o.runs; i++) {
    const c0 = process.cpuUsage(), w0 = process.hrtime.bigint();
    const res = await session.run(feeds);
    const w = Number(process.hrtime.bigint() - w0) / 1e6, c = process.cpuUsage(c0);
    if (i >= o.warmup) {
      wall.push(w);
      cpu.push((c.user + c.system) / 1e3);
    }
    if (i === 0 && o.out) {
      const y = res[session.outputNames[0]].data;
      fs.writeFileSync(o.out, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    }
  }
  const line = {
    runtime: 'onnxruntime', threads: o.threads, runs: o.runs, load_ms: +loadMs.toFixed(3),
    wall_ms: +quantile(wall, 0.5).toFixed(4), wall_p90_ms: +quantile(wall, 0.9).toFixed(4),
    cpu_ms: +quantile(cpu, 0.5).toFixed(4),
    peak_rss_mb: +(process.resourceUsage().maxRSS / 1024).toFixed(1),
  };
  console.log(JSON.stringify(line));
}

main().catch((err) => { console.error(`onnx_ort: ${err.message}`); process.exit(1); });
