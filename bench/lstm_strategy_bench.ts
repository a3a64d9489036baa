/**
 * LSTM recurrence strategies, timed on the current adapter: (a) one dispatch per time step
 * (src/ops/lstm.ts, what the codec uses: many workgroups share each step's 4H×H mat-vec), and
 * (b) one dispatch for the whole sequence, a single workgroup looping over time with h kept in
 * workgroup memory (the experimental kernel below; WebGPU has no grid-wide barrier, so one
 * workgroup is the only way to loop inside a dispatch). Both are checked against each other
 * first, then timed (wall clock around submit → onSubmittedWorkDone, median of 3), and the
 * result file records how many steps the single-workgroup kernel actually completed.
 *
 *   deno run -A bench/lstm_strategy_bench.ts [--hidden 64,512] [--steps 75,375]
 *
 * writes bench/results/lstm-strategy-<adapter>.json and prints a markdown table.
 */

import { parseArgs } from "node:util";
import { createTensor, readF32, uploadTensor } from "../src/backends/tensor.ts";
import { requestGpu } from "../src/backends/webgpu/device.ts";
import { lstmLayer } from "../src/ops/lstm.ts";
import { backendFacts, environment, markdownTable, slug } from "./_report.ts";

const { values } = parseArgs({
  options: {
    hidden: { type: "string", default: "64,512" },
    steps: { type: "string", default: "75,375" },
  },
});

const LOOP_WGSL = `
struct Params { h: u32, steps: u32 }
@group(0) @binding(0) var<storage, read_write> hs: array<f32>;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> gx: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
const WG: u32 = 256u;
var<workgroup> h: array<f32, 512>;
var<workgroup> gates: array<f32, 2048>;
fn sigmoid(v: f32) -> f32 { let e = exp(-abs(v)); return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0); }
fn tanh_exact(v: f32) -> f32 { let e = exp(-2.0 * abs(v)); return sign(v) * (1.0 - e) / (1.0 + e); }
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  for (var k = li; k < p.h; k += WG) { h[k] = hs[k]; }
  workgroupBarrier();
  for (var t = 0u; t < p.steps; t++) {
    for (var r = li; r < 4u * p.h; r += WG) {
      var acc = gx[t * 4u * p.h + r];
      for (var k = 0u; k < p.h; k++) { acc += w[r * p.h + k] * h[k]; }
      gates[r] = acc;
    }
    workgroupBarrier();
    for (var u = li; u < p.h; u += WG) {
      let cell = sigmoid(gates[p.h + u]) * c[u] + sigmoid(gates[u]) * tanh_exact(gates[2u * p.h + u]);
      c[u] = cell;
      let hv = sigmoid(gates[3u * p.h + u]) * tanh_exact(cell);
      h[u] = hv;
      hs[(t + 1u) * p.h + u] = hv;
    }
    workgroupBarrier();
  }
}`;

const gpu = await requestGpu({ precision: "f32" });
const device = gpu.device;
const module = device.createShaderModule({ code: LOOP_WGSL });
const pipeline = device.createComputePipeline({
  layout: "auto",
  compute: { module, entryPoint: "main" },
});

async function time(run: () => void): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    run();
    await device.queue.onSubmittedWorkDone();
    if (i > 0) times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[1];
}

const rows = [];
for (
  const [H, steps] of values.hidden!.split(",").flatMap((h) =>
    values.steps!.split(",").map((t) => [Number(h), Number(t)])
  )
) {
  const rand = (n: number, s: number) =>
    Float32Array.from({ length: n }, () => (Math.random() * 2 - 1) * s);
  const gx = uploadTensor(gpu, rand(steps * 4 * H, 1), [steps, 4 * H], "f32", "gx");
  const whh = uploadTensor(gpu, rand(4 * H * H, 1 / Math.sqrt(H)), [4 * H, H], "f32", "whh");
  const hsA = createTensor(gpu, [steps + 1, H], "f32", "hsA");
  const hsB = createTensor(gpu, [steps + 1, H], "f32", "hsB");
  const cA = createTensor(gpu, [H], "f32", "cA");
  const cB = createTensor(gpu, [H], "f32", "cB");
  const params = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(params, 0, new Uint32Array([H, steps, 0, 0]));
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [hsB, cB, gx, whh].map((t, binding) => ({
      binding,
      resource: { buffer: gpu.bufferOf(t, "bind") },
    }))
      .concat([{ binding: 4, resource: { buffer: params } }]),
  });
  const rec = gpu.createRecorder({ capacity: 4096 });
  const perStep = () => {
    rec.clear(cA);
    lstmLayer(rec, hsA, cA, gx, whh);
    rec.submit();
  };
  const loop = () => {
    const encoder = device.createCommandEncoder();
    encoder.clearBuffer(gpu.bufferOf(cB, "clear"));
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(1);
    pass.end();
    device.queue.submit([encoder.finish()]);
  };
  const a = await time(perStep);
  const b = await time(loop);
  const [ha, hb] = [await readF32(gpu, hsA), await readF32(gpu, hsB)];
  let diff = 0;
  for (let i = 0; i < ha.length; i++) diff = Math.max(diff, Math.abs(ha[i] - hb[i]));
  let completed = 0;
  for (let t = 1; t <= steps; t++) {
    if (hb.subarray(t * H, (t + 1) * H).some((v) => v !== 0)) completed = t;
  }
  rows.push({
    hidden: H,
    steps,
    perStepMs: +a.toFixed(1),
    perStepMsPerStep: +(a / steps).toFixed(3),
    singleWorkgroupMs: +b.toFixed(1),
    singleWorkgroupStepsCompleted: completed,
    maxDiff: +diff.toExponential(2),
  });
}
const file = new URL(`./results/lstm-strategy-${slug(gpu.description)}.json`, import.meta.url);
await Deno.writeTextFile(
  file,
  JSON.stringify({ environment: environment(), backend: backendFacts(gpu), rows }, null, 2) + "\n",
);
console.log(markdownTable(rows));
gpu.destroy();
