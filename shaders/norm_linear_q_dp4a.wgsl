requires packed_4x8_integer_dot_product;

// norm_linear_q.wgsl in integer arithmetic, on a device whose WGSL has
// packed_4x8_integer_dot_product: what rms_norm.wgsl then gemv_q8_0_dp4a.wgsl or
// gemv_q4_k_dp4a.wgsl compute (src/quant/FORMATS.md §5), in one dispatch, as the CPU twin
// (wasm/fused_quant.c) does. The normed row h = x_m · r_m · nw is formed as rms_norm.wgsl forms
// it (the same sum of squares over the same invocations, the same products), so it has the same
// bits, and is quantized per 32-block (quantize_block); a Q8_0 block adds
// f32(Σ q · xq) · (dw · dx), a Q4_K sub-block dx · ((d · sc) · Σ q · xq − (dmin · m) · Σ xq).
//
// Bindings, parameters and grid as norm_linear_q.wgsl. The workgroup walks the row CHUNK
// 32-blocks at a time: invocation i < CHUNK normalizes and quantizes block i of the chunk into
// workgroup memory, then 32 lanes per output take every 32nd block of the chunk against their
// weight row (WGSL functions cannot take storage buffers, so the normalizing and the block dot are
// written out in each fused dp4a kernel).

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
  eps: f32,
  w_layout: u32, // 0 q8_0, 1 q4_k
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> nw: array<vec4<W>>;
@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(4) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;
const CHUNK: u32 = 128u;

var<workgroup> xs: array<u32, 1024>; // [CHUNK blocks][8 words]
var<workgroup> xd: array<f32, 128>; // [CHUNK blocks]: dx
var<workgroup> xsum: array<i32, 128>; // [CHUNK blocks]: Σ xq

// Word i of the weight (rows counted from w_off).
fn word(which: u32, i: u32) -> u32 {
  return w[p.w_off + i];
}

// 1 / rms of the row of k floats from x[xb] as rms_norm.wgsl computes it: each invocation sums
// the squares of every 256th element from its own, then the workgroup reduces.
fn inv_rms(xb: u32, k: u32, li: u32) -> f32 {
  var acc = 0.0;
  for (var i = li; i < k; i += 256u) {
    let v = x[xb + i / 4u][i % 4u];
    acc += v * v;
  }
  return inverseSqrt(group_sum(acc, li, 256u) / f32(k) + p.eps);
}

// Invocation li < CHUNK: block c0 + li of the normed row (x[xb ..] · inv · nw, zeros past the
// row's `blocks`), quantized into slot li of the workgroup arrays.
fn quantize_chunk(xb: u32, inv: f32, c0: u32, blocks: u32, li: u32) {
  if (li < CHUNK) {
    var v = array<vec4f, 8>();
    if (c0 + li < blocks) {
      for (var i = 0u; i < 8u; i++) {
        let a = (c0 + li) * 8u + i;
        v[i] = x[xb + a] * inv * vec4f(nw[a]);
      }
    }
    let q = quantize_block(v);
    for (var i = 0u; i < 8u; i++) {
      xs[li * 8u + i] = q.words[i];
    }
    xd[li] = q.dx;
    xsum[li] = q.sum;
  }
}

// acc plus this lane's block terms of weight row `row` (layout q4_k when `q4`, else q8_0; rows of
// k weights from word 0) of weight `which` with the `count` blocks of the chunk from block c0.
fn chunk_dot(acc0: f32, which: u32, q4: bool, row: u32, k: u32, c0: u32, count: u32, lane: u32)
  -> f32 {
  var acc = acc0;
  for (var j = lane; j < count; j += LANES) {
    let block = c0 + j;
    var isum = 0;
    if (!q4) {
      let base = row * (k / 64u) * 17u + (block / 2u) * 17u;
      let half = block % 2u;
      let scales = unpack2x16float(word(which, base));
      for (var i = 0u; i < 8u; i++) {
        isum += dot4I8Packed(xs[j * 8u + i], word(which, base + 1u + 8u * half + i));
      }
      acc += f32(isum) * (select(scales.x, scales.y, half == 1u) * xd[j]);
    } else {
      // Sub-block `sub` of its super-block: nibbles sub % 2 of qs bytes 32 (sub / 2) ...
      let base = row * (k / 256u) * 36u + (block / 8u) * 36u;
      let sub = block % 8u;
      let scales = q4k_sub_scales(
        word(which, base),
        vec3u(word(which, base + 1u), word(which, base + 2u), word(which, base + 3u)),
        sub,
      );
      let q_at = base + 4u + (sub / 2u) * 8u;
      for (var i = 0u; i < 8u; i++) {
        let levels = (word(which, q_at + i) >> (4u * (sub % 2u))) & 0x0f0f0f0fu;
        isum += dot4I8Packed(xs[j * 8u + i], levels);
      }
      acc += xd[j] * (scales.x * f32(isum) - scales.y * f32(xsum[j]));
    }
  }
  return acc;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let m = wg.y;
  let xb = p.x_off / 4u + m * (p.k / 4u);
  let inv = inv_rms(xb, p.k, li);
  let blocks = p.k / 32u;
  let lane = li % LANES;
  let n = wg.x * ROWS + li / LANES;
  var acc = 0.0;
  for (var c0 = 0u; c0 < blocks; c0 += CHUNK) {
    quantize_chunk(xb, inv, c0, blocks, li);
    workgroupBarrier();
    if (n < p.n) {
      acc = chunk_dot(acc, 0u, p.w_layout == 1u, n, p.k, c0, min(CHUNK, blocks - c0), lane);
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
