// Arithmetic peak probe (benchmarks only; WebGPU, no CPU twin): every invocation runs
// `iterations` rounds of 8 independent vec4 multiply-adds in registers, then writes one value so
// that nothing is optimized away. FLOPs = invocations · iterations · 8 · 4 · 2.
//
// Bindings: out (invocations) f32.
// Grid: (workgroups, ·): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  iterations: u32,
  seed: f32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let s = p.seed + f32(i & 1023u) * 1e-6;
  let m = vec4f(0.9999);
  let c = vec4f(1e-4);
  var a0 = vec4f(s, s + 0.1, s + 0.2, s + 0.3);
  var a1 = a0 + 0.01;
  var a2 = a0 + 0.02;
  var a3 = a0 + 0.03;
  var a4 = a0 + 0.04;
  var a5 = a0 + 0.05;
  var a6 = a0 + 0.06;
  var a7 = a0 + 0.07;
  for (var k = 0u; k < p.iterations; k++) {
    a0 = fma(a0, m, c);
    a1 = fma(a1, m, c);
    a2 = fma(a2, m, c);
    a3 = fma(a3, m, c);
    a4 = fma(a4, m, c);
    a5 = fma(a5, m, c);
    a6 = fma(a6, m, c);
    a7 = fma(a7, m, c);
  }
  if (i < arrayLength(&out)) {
    out[i] = dot((a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7), vec4f(1.0));
  }
}
