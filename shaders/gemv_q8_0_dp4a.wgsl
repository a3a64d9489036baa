requires packed_4x8_integer_dot_product;

// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for a q8_0 weight, in
// integer arithmetic: gemv_q8_0 on a device whose WGSL has packed_4x8_integer_dot_product, so a
// decode step rounds its activations as the GEMM of a pass does (gemm_q8_0_dp4a.wgsl) and as the
// CPU backend does (src/quant/FORMATS.md §5). A block adds f32(Σ q · xq) · (dw · dx), the integer
// sum from eight dot4I8Packed of the weight's int8 words as stored.
//
// Bindings, parameters and grid as gemv_q8_0.wgsl (x at a 4-aligned offset). The workgroup walks
// the activation row CHUNK 32-blocks at a time: invocation i < CHUNK quantizes block i of the
// chunk (quantize_block) into workgroup memory, then LANES threads per output take every
// LANES-th block of the chunk against their weight row, and the lanes reduce (group_sum).

struct Params {
  m: u32,
  n: u32,
  k: u32,
  x_off: u32,
  y_off: u32,
  w_off: u32,
  b_off: u32,
  has_bias: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;
const CHUNK: u32 = 128u;

var<workgroup> xs: array<u32, 1024>; // [CHUNK blocks][8 words]
var<workgroup> xd: array<f32, 128>; // [CHUNK blocks]: dx

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % LANES;
  let n = wg.x * ROWS + li / LANES;
  let m = wg.y;
  let blocks = p.k / 32u;
  let xb = p.x_off / 4u + m * (p.k / 4u);
  let wb = p.w_off + n * (p.k / 64u) * 17u;
  var acc = 0.0;
  for (var c0 = 0u; c0 < blocks; c0 += CHUNK) {
    if (li < CHUNK) {
      var v = array<vec4f, 8>();
      if (c0 + li < blocks) {
        for (var i = 0u; i < 8u; i++) {
          v[i] = x[xb + (c0 + li) * 8u + i];
        }
      }
      let q = quantize_block(v);
      for (var i = 0u; i < 8u; i++) {
        xs[li * 8u + i] = q.words[i];
      }
      xd[li] = q.dx;
    }
    workgroupBarrier();
    if (n < p.n) {
      let count = min(CHUNK, blocks - c0);
      for (var j = lane; j < count; j += LANES) {
        let block = c0 + j;
        let half = block % 2u;
        let base = wb + (block / 2u) * 17u;
        let scales = unpack2x16float(w[base]);
        let dw = select(scales.x, scales.y, half == 1u);
        var isum = 0;
        for (var i = 0u; i < 8u; i++) {
          isum += dot4I8Packed(xs[j * 8u + i], w[base + 1u + 8u * half + i]);
        }
        acc += f32(isum) * (dw * xd[j]);
      }
    }
    workgroupBarrier();
  }
  let total = group_sum(acc, li, LANES);
  if (lane == 0u && n < p.n) {
    var v = total;
    if (p.has_bias != 0u) {
      v += f32(b[p.b_off + n]);
    }
    let o = p.y_off + m * p.n + n;
    if (p.accumulate != 0u) {
      v += y[o];
    }
    y[o] = v;
  }
}
