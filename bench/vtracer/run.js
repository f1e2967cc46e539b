// run.js - trace images with VTracer (@neplex/vectorizer) for bench/vectorize.sh.
//
//   node run.js SETTINGS OUT_DIR IMAGE...
// SETTINGS: "default" (VTracer's own defaults) or "best" (the best spline settings the issue
// measured: colour precision 8, layer difference 4, speckle 0, corner 30).
// Writes OUT_DIR/<stem>.svg and prints one JSON line per image: file, svg, ms, cpu_ms
// (wall and CPU time of the vectorize call alone: decoding the PNG is inside it, as it is
// inside `modeld vectorize`'s per-file time).
'use strict';
const fs = require('fs');
const path = require('path');
const { vectorizeSync, ColorMode, Hierarchical, PathSimplifyMode } = require('@neplex/vectorizer');

// VTracer's Config::default(), spelled out so the run does not depend on binding defaults.
const DEFAULT = {
  colorMode: ColorMode.Color,
  hierarchical: Hierarchical.Stacked,
  filterSpeckle: 4,
  colorPrecision: 6,
  layerDifference: 16,
  mode: PathSimplifyMode.Spline,
  cornerThreshold: 60,
  lengthThreshold: 4.0,
  maxIterations: 10,
  spliceThreshold: 45,
  pathPrecision: 2,
};
const SETTINGS = {
  default: DEFAULT,
  best: { ...DEFAULT, colorPrecision: 8, layerDifference: 4, filterSpeckle: 0, cornerThreshold: 30 },
};

function main(argv) {
  const [name, outDir, ...images] = argv;
  const cfg = SETTINGS[name];
  if (!cfg || !outDir || images.length === 0) {
    process.stderr.write('usage: node run.js default|best OUT_DIR IMAGE...\n');
    return 2;
  }
  fs.mkdirSync(outDir, { recursive: true });
  let failed = 0;
  for (const file of images) {
    const svgPath = path.join(outDir, path.basename(file).replace(/\.[^.]+$/, '') + '.svg');
    const src = fs.readFileSync(file);
    try {
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const svg = vectorizeSync(src, cfg);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const cpu = process.cpuUsage(cpu0);
      fs.writeFileSync(svgPath, svg);
      console.log(JSON.stringify({ file, svg: svgPath, ms, cpu_ms: (cpu.user + cpu.system) / 1000 }));
    } catch (e) {
      failed++;
      console.log(JSON.stringify({ file, error: String(e && e.message ? e.message : e) }));
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
