requires packed_4x8_integer_dot_product;

// gate_up_gelu_q.wgsl in integer arithmetic, on a device whose WGSL has
// packed_4x8_integer_dot_product: what rms_norm.wgsl, the integer GEMVs (gemv_q8_0_dp4a.wgsl,
// gemv_q4_k_dp4a.wgsl) and gelu_mul.wgsl compute (src/quant/FORMATS.md §5), in one dispatch, as
// the CPU twin (wasm/fused_quant.c) does. The normed row h = x_m · r_m · nw is formed as
// rms_norm.wgsl forms it (so it has the same bits) and quantized per 32-block (quantize_block);
// the block terms are the GEMVs'.
//
// Bindings, parameters and grid as gate_up_gelu_q.wgsl. The workgroup walks the row CHUNK
// 32-blocks at a time: invocation i < CHUNK normalizes and quantizes block i of the chunk into
// workgroup memory, then 32 lanes per weight row (gate and up of 4 outputs) take every 32nd block
// of the chunk; the rows' sums meet in workgroup memory. (The normalizing and the block dot are
// written out in each fused dp4a kernel: WGSL functions cannot take storage buffers.)

struct Params {
  m: u32,
  f: u32,
  d: u32,
  x_off: u32,
  out_off: u32,
  eps: f32,
  layouts: u32, // bit 0: gate is q4_k, bit 1: up is q4_k
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> nw: array<vec4<W>>;
@group(0) @binding(3) var<storage, read> wg_: array<u32>;
@group(0) @binding(4) var<storage, read> wu: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const OUTPUTS: u32 = 4u;
const CHUNK: u32 = 128u;

var<workgroup> dots: array<f32, 8>;
var<workgroup> xs: array<u32, 1024>; // [CHUNK blocks][8 words]
var<workgroup> xd: array<f32, 128>; // [CHUNK blocks]: dx
var<workgroup> xsum: array<i32, 128>; // [CHUNK blocks]: Σ xq

// Word i of the gate (which 0) or up (which 1) weight.
fn word(which: u32, i: u32) -> u32 {
  if (which == 0u) {
    return wg_[i];
  }
  return wu[i];
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
  let xb = p.x_off / 4u + m * (p.d / 4u);
  let inv = inv_rms(xb, p.d, li);

  let slot = li / LANES; // 0..7: output slot / 2, gate (even) or up (odd)
  let f = wg.x * OUTPUTS + slot / 2u;
  let lane = li % LANES;
  let which = slot % 2u;
  let q4 = ((p.layouts >> which) & 1u) == 1u;
  let blocks = p.d / 32u;
  var acc = 0.0;
  for (var c0 = 0u; c0 < blocks; c0 += CHUNK) {
    quantize_chunk(xb, inv, c0, blocks, li);
    workgroupBarrier();
    if (f < p.f) {
      acc = chunk_dot(acc, which, q4, f, p.d, c0, min(CHUNK, blocks - c0), lane);
    }
    workgroupBarrier();
  }
  let total = group_sum(acc, li, LANES);
  if (lane == 0u) {
    dots[slot] = total;
  }
  workgroupBarrier();
  if (li < OUTPUTS) {
    let ff = wg.x * OUTPUTS + li;
    if (ff < p.f) {
      out[p.out_off + m * p.f + ff] = gelu_erf(dots[2u * li]) * dots[2u * li + 1u];
    }
  }
}
