// Row argmax: out[r] = the first index of the largest value of x[r, :] (torch.argmax's tie rule).
//
// Bindings: out (rows) u32 at out_off | x (rows, cols) f32 at x_off.
// Grid: (rows). One workgroup of 256 threads per row; ties resolve to the smaller index.

struct Params {
  rows: u32,
  cols: u32,
  x_off: u32,
  out_off: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

var<workgroup> best_value: array<f32, 256>;
var<workgroup> best_index: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let base = p.x_off + wg.x * p.cols;
  var bv = NEG_BIG;
  var bi = 0xffffffffu;
  for (var i = li; i < p.cols; i += 256u) {
    let v = x[base + i];
    if (v > bv || bi == 0xffffffffu) {
      bv = v;
      bi = i;
    }
  }
  best_value[li] = bv;
  best_index[li] = bi;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) {
      let ov = best_value[li + s];
      let oi = best_index[li + s];
      let mine = best_value[li];
      let my_i = best_index[li];
      if (oi != 0xffffffffu && (my_i == 0xffffffffu || ov > mine || (ov == mine && oi < my_i))) {
        best_value[li] = ov;
        best_index[li] = oi;
      }
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    out[p.out_off + wg.x] = best_index[0];
  }
}
