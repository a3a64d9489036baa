// The decode-step attention input over quantized Q and K projections (q8_0 or q4_k each,
// src/quant/FORMATS.md §3, named by `layouts`): qkv_rope.wgsl without V (which is a
// norm_linear_q into the cache: with it this kernel would bind more than WebGPU's guaranteed 8
// storage buffers), weights dequantized in registers, f32 math (the CPU twin is
// wasm/fused_quant.c):
//   h = x_m · r_m · nw;  q | k = h · wq, wkᵀ rotated by angle(pos[m]);
//   q_out[m] = q;  k_cache[kv_row + m] = k.
// d % 64 == 0 (both q8_0) or d % 256 == 0 (a q4_k one), head_dim % 2 == 0.
//
// Bindings: q_out (M, d) f32 | k_cache (·, d) f32 at k_off | x (M, d/4) vec4f at x_off/4 |
// nw (d/4) vec4<W> | wq (d, d) quantized | wk (d, d) quantized | pos (M) u32 at pos_off |
// table (max_pos, head_dim/2) vec2f (cos, sin; see ops/rope.ts).
// Grid: (2 · heads · ceil(half / 4), M). A workgroup owns 4 rotation pairs (j, j + half) of one
// head of q or k: 8 weight rows, 32 lanes each; lane sums meet in workgroup memory, where the
// pairs are rotated. (The dequantizing dot is written out in each fused kernel over quantized
// weights: WGSL functions cannot take storage buffers.)

struct Params {
  m: u32,
  d: u32,
  heads: u32,
  head_dim: u32,
  x_off: u32,
  q_off: u32,
  k_off: u32,
  kv_row: u32,
  pos_off: u32,
  eps: f32,
  layouts: u32, // bit 0: wq is q4_k, bit 1: wk is q4_k
}

@group(0) @binding(0) var<storage, read_write> q_out: array<f32>;
@group(0) @binding(1) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<vec4f>;
@group(0) @binding(3) var<storage, read> nw: array<vec4<W>>;
@group(0) @binding(4) var<storage, read> wq: array<u32>;
@group(0) @binding(5) var<storage, read> wk: array<u32>;
@group(0) @binding(6) var<storage, read> pos: array<u32>;
@group(0) @binding(7) var<storage, read> table: array<vec2f>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const PAIRS: u32 = 4u;

var<workgroup> dots: array<f32, 8>;

// Word i of wq (which 0) or wk (which 1).
fn word(which: u32, i: u32) -> u32 {
  if (which == 0u) {
    return wq[i];
  }
  return wk[i];
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

  // Which rows: section (0 q, 1 k), head, and this thread's pair and half.
  let half = p.head_dim / 2u;
  let blocks = (half + PAIRS - 1u) / PAIRS;
  let section = wg.x / (p.heads * blocks);
  let head = (wg.x / blocks) % p.heads;
  let slot = li / LANES; // 0..7
  let j = (wg.x % blocks) * PAIRS + slot / 2u;
  let col = head * p.head_dim + j + (slot % 2u) * half; // row of the section's weight
  let lane = li % LANES;
  var acc = 0.0;
  if (j < half) {
    acc = row_dot(section, ((p.layouts >> section) & 1u) == 1u, col, xb, p.d, lane);
  }
  let total = group_sum(acc, li, LANES) * inv;
  if (lane == 0u) {
    dots[slot] = total;
  }
  workgroupBarrier();
  // One thread per pair writes both of its rows.
  if (li < PAIRS) {
    let jj = (wg.x % blocks) * PAIRS + li;
    if (jj < half) {
      let a = dots[2u * li];
      let b = dots[2u * li + 1u];
      let cs = table[pos[p.pos_off + m] * half + jj];
      let ra = a * cs.x - b * cs.y;
      let rb = b * cs.x + a * cs.y;
      let c = head * p.head_dim + jj;
      if (section == 0u) {
        q_out[p.q_off + m * p.d + c] = ra;
        q_out[p.q_off + m * p.d + c + half] = rb;
      } else {
        k_cache[p.k_off + (p.kv_row + m) * p.d + c] = ra;
        k_cache[p.k_off + (p.kv_row + m) * p.d + c + half] = rb;
      }
    }
  }
}
