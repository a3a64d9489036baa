// Row softmax in place: x[r, :] = exp(x[r, :] − max) / Σ exp(x[r, :] − max).
//
// Bindings: x (rows, cols) f32 at x_off.
// Grid: (rows). One workgroup of 256 threads per row; the row max and sum are workgroup
// reductions (_lanes.wgsl).

struct Params {
  rows: u32,
  cols: u32,
  x_off: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let base = p.x_off + wg.x * p.cols;
  var m = NEG_BIG;
  for (var i = li; i < p.cols; i += 256u) {
    m = max(m, x[base + i]);
  }
  let row_max = workgroup_max(m, lanes);
  var sum = 0.0;
  for (var i = li; i < p.cols; i += 256u) {
    let e = exp(x[base + i] - row_max);
    x[base + i] = e;
    sum += e;
  }
  let inv = 1.0 / workgroup_sum(sum, lanes);
  for (var i = li; i < p.cols; i += 256u) {
    x[base + i] *= inv;
  }
}
