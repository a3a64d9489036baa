// RMSNorm over the last dimension, in f32: y[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) * w.
//
// Bindings: y (R, D) f32 at y_off | x (R, D) f32 at x_off | w (D) W.
// Grid: (R). One workgroup of 256 threads per row: strided sum of squares, workgroup reduction
// (_lanes.wgsl: the barrier tree, or subgroups where the device has them), scale.

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
  x_off: u32,
  y_off: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let xb = p.x_off + wg.x * p.d;
  let yb = p.y_off + wg.x * p.d;
  var acc = 0.0;
  for (var i = li; i < p.d; i += 256u) {
    let v = x[xb + i];
    acc += v * v;
  }
  let inv = inverseSqrt(workgroup_sum(acc, lanes) / f32(p.d) + p.eps);
  for (var i = li; i < p.d; i += 256u) {
    y[yb + i] = x[xb + i] * inv * f32(w[i]);
  }
}
