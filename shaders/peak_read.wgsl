// Memory read probe (benchmarks only; WebGPU, no CPU twin): every invocation sums the vec4s
// `i, i + stride, i + 2 · stride, …` of x, neighbouring invocations reading neighbouring vec4s,
// and writes its sum so that nothing is optimized away. Bytes read = 16 · len(x).
//
// Bindings: out (invocations) f32 | x (vec4s) f32.
// Grid: (workgroups, ·): stride = workgroups · 256 invocations.

struct Params {
  vec4s: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * nwg.y * 256u;
  let i = gid.x + gid.y * nwg.x * 256u;
  var sum = vec4f(0.0);
  for (var j = i; j < p.vec4s; j += stride) {
    sum += x[j];
  }
  if (i < arrayLength(&out)) {
    out[i] = dot(sum, vec4f(1.0));
  }
}
