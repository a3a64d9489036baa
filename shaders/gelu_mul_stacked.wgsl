// The gated MLP's activation from stacked gate|up rows (as one GEMM over the stacked weights
// writes them): y[r, j] = gelu(gu[r, j]) · gu[r, f + j], GELU in its exact erf form (the
// arithmetic of gelu_mul.wgsl, so the same bits as `geluMul` on the parts).
//
// Bindings: y (R, f) f32 at out_off | gu (R, 2f) f32 at gu_off.
// Grid: (ceil(R · f / 256), ·), a 2-D grid counting as consecutive rows of workgroups.

struct Params {
  n: u32,
  f: u32,
  out_off: u32,
  gu_off: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let g = p.gu_off + i + (i / p.f) * p.f;
    y[p.out_off + i] = gelu_erf(gu[g]) * gu[g + p.f];
  }
}
