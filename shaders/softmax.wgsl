// Row softmax in place: x[r, :] = exp(x[r, :] − max) / Σ exp(x[r, :] − max).
//
// Bindings: x (rows, cols) f32 at x_off.
// Grid: (rows). One workgroup of 256 threads per row.

struct Params {
  rows: u32,
  cols: u32,
  x_off: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let base = p.x_off + wg.x * p.cols;
  var m = NEG_BIG;
  for (var i = li; i < p.cols; i += 256u) {
    m = max(m, x[base + i]);
  }
  red[li] = m;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] = max(red[li], red[li + s]);
    }
    workgroupBarrier();
  }
  let row_max = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var i = li; i < p.cols; i += 256u) {
    let e = exp(x[base + i] - row_max);
    x[base + i] = e;
    sum += e;
  }
  red[li] = sum;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] += red[li + s];
    }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  for (var i = li; i < p.cols; i += 256u) {
    x[base + i] *= inv;
  }
}
