// Residual vector quantization of latent frames (EnCodec's ResidualVectorQuantizer.encode):
// for q = 0..nq−1, code[q] = argmin_j ‖e_qj‖² − 2 r·e_qj (the nearest codeword in squared L2;
// ‖r‖² does not change the argmin; ties go to the lowest index, as torch's argmax of the negated
// distance does), then r −= e_q,code[q].
//
// Bindings: codes (nq, stride) u32 at codes_off, this call writing columns col .. col + frames |
//   x (frames, d) f32 at x_off | embed (nq, d, bins) f32: the codebooks transposed, so that the
//   threads scanning neighbouring codewords read neighbouring addresses.
// Grid: (frames). One workgroup of 256 threads per frame: each thread scans every 256th
// codeword, then a tree reduction keeps (distance, index) with the lower index on ties.
// Needs d ≤ 1024 (the residual lives in workgroup memory).

struct Params {
  frames: u32,
  d: u32,
  bins: u32,
  nq: u32,
  x_off: u32,
  codes_off: u32,
  stride: u32,
  col: u32,
}

@group(0) @binding(0) var<storage, read_write> codes: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> embed: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

var<workgroup> residual: array<f32, 1024>;
var<workgroup> best_dist: array<f32, 256>;
var<workgroup> best_index: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let frame = wg.x;
  for (var c = li; c < p.d; c += 256u) {
    residual[c] = x[p.x_off + frame * p.d + c];
  }
  workgroupBarrier();
  for (var q = 0u; q < p.nq; q++) {
    var dist = 3.0e38;
    var index = 0xffffffffu;
    let qb = q * p.d * p.bins;
    for (var j = li; j < p.bins; j += 256u) {
      var s = 0.0;
      for (var c = 0u; c < p.d; c++) {
        let e = embed[qb + c * p.bins + j];
        s += e * (e - 2.0 * residual[c]);
      }
      if (s < dist) {
        dist = s;
        index = j;
      }
    }
    best_dist[li] = dist;
    best_index[li] = index;
    workgroupBarrier();
    for (var step = 128u; step > 0u; step >>= 1u) {
      if (li < step) {
        let od = best_dist[li + step];
        let oi = best_index[li + step];
        if (od < best_dist[li] || (od == best_dist[li] && oi < best_index[li])) {
          best_dist[li] = od;
          best_index[li] = oi;
        }
      }
      workgroupBarrier();
    }
    let code = best_index[0];
    if (li == 0u) {
      codes[p.codes_off + q * p.stride + p.col + frame] = code;
    }
    for (var c = li; c < p.d; c += 256u) {
      residual[c] -= embed[qb + c * p.bins + code];
    }
    workgroupBarrier();
  }
}
