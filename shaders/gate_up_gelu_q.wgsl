// The decode-step MLP input over quantized gate and up projections (q8_0 or q4_k each,
// src/quant/FORMATS.md §3, named by `layouts`): gate_up_gelu.wgsl over weights dequantized in
// registers, f32 math (the CPU twin is wasm/fused_quant.c):
//   h = x_m · r_m · nw;  out[m, f] = gelu(h · wg[f]) · (h · wu[f]).
// d % 64 == 0 (both q8_0) or d % 256 == 0 (a q4_k one).
//
// Bindings: out (M, F) f32 at out_off | x (M, d/4) vec4f at x_off/4 | nw (d/4) vec4<W> |
// wg (F, d) quantized | wu (F, d) quantized.
// Grid: (ceil(F / 4), M). A workgroup owns 4 outputs: 8 weight rows (gate and up of each), 32
// lanes per row. (The dequantizing dot is written out in each fused kernel over quantized
// weights: WGSL functions cannot take storage buffers.)

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

var<workgroup> dots: array<f32, 8>;

// Word i of the gate (which 0) or up (which 1) weight.
fn word(which: u32, i: u32) -> u32 {
  if (which == 0u) {
    return wg_[i];
  }
  return wu[i];
}

// This lane's part of the dot of weight row `row` (layout q4_k when `q4`, else q8_0; rows of k
// weights from word 0) of weight `which` with the normed input row x[xb ..] · nw (without 1/rms):
// the lanes take every LANES-th pair of Q8_0 blocks or Q4_K sub-block, as gemv_q8_0.wgsl and
// gemv_q4_k.wgsl do.
fn row_dot(which: u32, q4: bool, row: u32, xb: u32, k: u32, lane: u32) -> f32 {
  var acc = 0.0;
  if (!q4) {
    let pairs = k / 64u;
    let wb = row * pairs * 17u;
    for (var pr = lane; pr < pairs; pr += LANES) {
      let base = wb + pr * 17u;
      let s = unpack2x16float(word(which, base));
      var first = 0.0;
      var second = 0.0;
      for (var i = 0u; i < 8u; i++) {
        let a = pr * 16u + i;
        first += dot(i8x4(word(which, base + 1u + i)), x[xb + a] * vec4f(nw[a]));
        second += dot(i8x4(word(which, base + 9u + i)), x[xb + a + 8u] * vec4f(nw[a + 8u]));
      }
      acc += s.x * first + s.y * second;
    }
    return acc;
  }
  let wb = row * (k / 256u) * 36u;
  for (var j = lane; j < k / 32u; j += LANES) {
    let base = wb + (j / 8u) * 36u;
    let sub = j % 8u;
    let scales = q4k_sub_scales(
      word(which, base),
      vec3u(word(which, base + 1u), word(which, base + 2u), word(which, base + 3u)),
      sub,
    );
    // Sub-block 2c + h: the nibbles h of bytes 32c .. 32c + 31 of qs (words 4 + 8c ..).
    let q_at = base + 4u + (sub / 2u) * 8u;
    let shift = (sub % 2u) * 4u + vec4u(0u, 8u, 16u, 24u);
    var qx = 0.0;
    var xs = 0.0;
    for (var i = 0u; i < 8u; i++) {
      let xv = x[xb + j * 8u + i] * vec4f(nw[j * 8u + i]);
      qx += dot(vec4f((vec4u(word(which, q_at + i)) >> shift) & vec4u(15u)), xv);
      xs += xv.x + xv.y + xv.z + xv.w;
    }
    acc += scales.x * qx - scales.y * xs;
  }
  return acc;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let m = wg.y;
  let d4 = p.d / 4u;
  let xb = p.x_off / 4u + m * d4;
  var ss = 0.0;
  for (var k = li; k < d4; k += 256u) {
    let v = x[xb + k];
    ss += dot(v, v);
  }
  let inv = inverseSqrt(group_sum(ss, li, 256u) / f32(p.d) + p.eps);

  let slot = li / LANES; // 0..7: output slot / 2, gate (even) or up (odd)
  let f = wg.x * OUTPUTS + slot / 2u;
  let lane = li % LANES;
  let which = slot % 2u;
  var acc = 0.0;
  if (f < p.f) {
    acc = row_dot(which, ((p.layouts >> which) & 1u) == 1u, f, xb, p.d, lane);
  }
  let total = group_sum(acc, li, LANES) * inv;
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
