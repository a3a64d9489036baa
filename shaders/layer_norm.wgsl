// LayerNorm over the last dimension, in f32: y[r, :] = (x[r, :] − mean) / sqrt(var + eps) · w + b
// with the biased variance (PyTorch's layer_norm). Vocos's AdaLayerNorm is the same with w and b
// taken from row `bandwidth id` of its scale/shift tables (w_off, b_off point there).
//
// Bindings: y (R, D) f32 at y_off | x (R, D) f32 at x_off | w (D) W at w_off | b (D) W at b_off.
// Grid: (R). One workgroup of 256 threads per row: mean, then the mean of squared deviations,
// each a strided sum and a workgroup reduction (_lanes.wgsl).

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
  x_off: u32,
  y_off: u32,
  w_off: u32,
  b_off: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<W>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let xb = p.x_off + wg.x * p.d;
  let yb = p.y_off + wg.x * p.d;
  var acc = 0.0;
  for (var i = li; i < p.d; i += 256u) {
    acc += x[xb + i];
  }
  let mean = workgroup_sum(acc, lanes) / f32(p.d);
  acc = 0.0;
  for (var i = li; i < p.d; i += 256u) {
    let v = x[xb + i] - mean;
    acc += v * v;
  }
  let inv = inverseSqrt(workgroup_sum(acc, lanes) / f32(p.d) + p.eps);
  for (var i = li; i < p.d; i += 256u) {
    y[yb + i] = (x[xb + i] - mean) * inv * f32(w[p.w_off + i]) + f32(b[p.b_off + i]);
  }
}
