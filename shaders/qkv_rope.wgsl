// One decode-step attention input in one dispatch: RMSNorm of the residual row, the Q, K and V
// projections (one stacked weight [3d, d]), rotate-half RoPE of Q and K at the row's position, Q
// written out and K, V appended to the cache.
//   h = x_m · r_m · nw;  q | k | v = h · wqkvᵀ;  q, k rotated by angle(pos[m]);
//   q_out[m] = q;  k_cache[kv_row + m] = k;  v_cache[kv_row + m] = v.
// Requires d % 4 == 0 and head_dim % 2 == 0.
//
// Bindings: q_out (M, d) f32 | k_cache (·, d) f32 at k_off | v_cache (·, d) f32 at v_off |
// x (M, d/4) vec4f at x_off/4 | nw (d/4) vec4<W> | wqkv (3d, d/4) vec4<W> |
// pos (M) u32 at pos_off | table (max_pos, head_dim/2) vec2f (cos, sin; see ops/rope.ts).
// Grid: (3 · heads · ceil(half / 4), M). A workgroup owns 4 rotation pairs (j, j + half) of one
// head of one of q/k/v: 8 weight rows, 32 lanes each; lane sums meet in workgroup memory, where
// the pairs are rotated.

struct Params {
  m: u32,
  d: u32,
  heads: u32,
  head_dim: u32,
  x_off: u32,
  q_off: u32,
  k_off: u32,
  v_off: u32,
  kv_row: u32,
  pos_off: u32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read_write> q_out: array<f32>;
@group(0) @binding(1) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(2) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<vec4f>;
@group(0) @binding(4) var<storage, read> nw: array<vec4<W>>;
@group(0) @binding(5) var<storage, read> wqkv: array<vec4<W>>;
@group(0) @binding(6) var<storage, read> pos: array<u32>;
@group(0) @binding(7) var<storage, read> table: array<vec2f>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const PAIRS: u32 = 4u;

var<workgroup> dots: array<f32, 8>;

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

  // Which rows: section (0 q, 1 k, 2 v), head, and this thread's pair and half.
  let half = p.head_dim / 2u;
  let blocks = (half + PAIRS - 1u) / PAIRS;
  let section = wg.x / (p.heads * blocks);
  let head = (wg.x / blocks) % p.heads;
  let slot = li / LANES; // 0..7
  let j = (wg.x % blocks) * PAIRS + slot / 2u;
  let col = head * p.head_dim + j + (slot % 2u) * half; // column inside the section
  let lane = li % LANES;
  var acc = 0.0;
  if (j < half) {
    let wb = (section * p.d + col) * d4;
    for (var k = lane; k < d4; k += LANES) {
      acc += dot(x[xb + k] * vec4f(nw[k]), vec4f(wqkv[wb + k]));
    }
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
      var a = dots[2u * li];
      var b = dots[2u * li + 1u];
      if (section < 2u) {
        let cs = table[pos[p.pos_off + m] * half + jj];
        let ra = a * cs.x - b * cs.y;
        b = b * cs.x + a * cs.y;
        a = ra;
      }
      let c = head * p.head_dim + jj;
      if (section == 0u) {
        q_out[p.q_off + m * p.d + c] = a;
        q_out[p.q_off + m * p.d + c + half] = b;
      } else if (section == 1u) {
        k_cache[p.k_off + (p.kv_row + m) * p.d + c] = a;
        k_cache[p.k_off + (p.kv_row + m) * p.d + c + half] = b;
      } else {
        v_cache[p.v_off + (p.kv_row + m) * p.d + c] = a;
        v_cache[p.v_off + (p.kv_row + m) * p.d + c + half] = b;
      }
    }
  }
}
