// The gradient of RMSNorm (shaders/rms_norm.wgsl) with respect to its input, the weight frozen:
// with r = 1 / sqrt(mean(x²) + eps) and g = dy · w,
//   dx[r, :] (+)= r · g − x · r³ · (Σ g · x) / D.
//
// Bindings: dx (R, D) f32 at dx_off, overwritten (or added to when accumulate is 1) |
// dy (R, D) f32 at dy_off | x (R, D) f32 at x_off | w (D) W at w_off.
// Grid: (R). One workgroup of 256 threads per row: two strided sums, tree reductions, the update.

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
  accumulate: u32,
  dx_off: u32,
  dy_off: u32,
  x_off: u32,
  w_off: u32,
}

@group(0) @binding(0) var<storage, read_write> dx: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let xb = p.x_off + wg.x * p.d;
  let yb = p.dy_off + wg.x * p.d;
  let ob = p.dx_off + wg.x * p.d;
  var ss = 0.0;
  var gx = 0.0;
  for (var i = li; i < p.d; i += 256u) {
    let v = x[xb + i];
    ss += v * v;
    gx += dy[yb + i] * f32(w[p.w_off + i]) * v;
  }
  let r = inverseSqrt(group_sum(ss, li, 256u) / f32(p.d) + p.eps);
  let c = group_sum(gx, li, 256u) * r * r * r / f32(p.d);
  for (var i = li; i < p.d; i += 256u) {
    var v = r * dy[yb + i] * f32(w[p.w_off + i]) - x[xb + i] * c;
    if (p.accumulate != 0u) {
      v += dx[ob + i];
    }
    dx[ob + i] = v;
  }
}
