// Attention backward, first pass (flash-attention 2's, query-major): for query i of head h, with
// scores x_ij = scale · q_i · k_j over its keys j ∈ [spans[2i], spans[2i] + spans[2i + 1]),
// P_ij = softmax_j(x_ij), D_i = dO_i · O_i and dP_ij = dO_i · v_j,
//   dq_i = scale · Σ_j P_ij (dP_ij − D_i) k_j,
// accumulated with an online softmax (running max m and sum l, the accumulator rescaled when m
// rises, divided by l at the end). It also leaves in `scratch`, for attention_backward_dkv, the
// row's softmax statistics m and l and D_i (as f32 bits: P_ij = exp(x_ij − m) / l), and each
// row's key range.
//
// Threads: LANES = ceil(head_dim / 32) per query, each owning 32 dimensions of it (8 vec4s of
// the scaled query, of dO and of the accumulator), so a tile holds TQ = 64 / LANES queries (32
// for head_dim 64). Key tiles of KT = min(8, 256 / (head_dim / 4)) keys are staged in workgroup
// memory (K and V as vec4s); the tile walks the hull of its queries' key ranges, each query
// taking only its own keys. Lanes' partial dot products meet in workgroup memory.
//
// Bindings: dq (S, ·) f32 | scratch u32 words from scratch_off: (m, l, D) of row i, head h at
// 3 · (i · heads + h), then row i's keys (first, end) at 3 · S · heads + 2i | q, k, v, dout, out
// (S, ·) f32 | spans (S, 2) u32 from spans_off. Head h of row r of x starts at
// x_off + r · x_stride + h · head_dim. head_dim is a multiple of 4, at most 256.
// Grid: (ceil(S / TQ), heads). The CPU twin is wasm/attention_backward.c.

struct Params {
  s: u32,
  heads: u32,
  head_dim: u32,
  scale: f32,
  q_off: u32,
  q_stride: u32,
  k_off: u32,
  k_stride: u32,
  v_off: u32,
  v_stride: u32,
  do_off: u32,
  do_stride: u32,
  o_off: u32,
  o_stride: u32,
  dq_off: u32,
  dq_stride: u32,
  spans_off: u32,
  scratch_off: u32,
}

@group(0) @binding(0) var<storage, read_write> dq: array<f32>;
@group(0) @binding(1) var<storage, read_write> scratch: array<u32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read> out: array<f32>;
@group(0) @binding(7) var<storage, read> spans: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;
// vec4s of a lane's share of the head (32 dimensions).
const SLICE: u32 = 8u;
// The most keys of a key tile, and vec4s of a K or V tile (4 KiB each).
const MAX_KT: u32 = 8u;
const TILE: u32 = 256u;

var<workgroup> kt: array<vec4f, TILE>;
var<workgroup> vt: array<vec4f, TILE>;
// Lanes' partial (score, dP) per thread and key of the tile, or (D, ·) before the keys.
var<workgroup> part: array<vec2f, 512>;
// The hull of the tile's key ranges.
var<workgroup> wg_hull: vec2u;

// Key range [first, end) of query i.
fn key_range(i: u32) -> vec2u {
  let first = spans[p.spans_off + 2u * i];
  return vec2u(first, first + spans[p.spans_off + 2u * i + 1u]);
}

fn load_q(b: u32) -> vec4f {
  return vec4f(q[b], q[b + 1u], q[b + 2u], q[b + 3u]);
}

fn load_k(b: u32) -> vec4f {
  return vec4f(k[b], k[b + 1u], k[b + 2u], k[b + 3u]);
}

fn load_v(b: u32) -> vec4f {
  return vec4f(v[b], v[b + 1u], v[b + 2u], v[b + 3u]);
}

fn load_dout(b: u32) -> vec4f {
  return vec4f(dout[b], dout[b + 1u], dout[b + 2u], dout[b + 3u]);
}

fn load_out(b: u32) -> vec4f {
  return vec4f(out[b], out[b + 1u], out[b + 2u], out[b + 3u]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let hd = p.head_dim;
  let hd4 = hd / 4u;
  let lanes = (hd4 + SLICE - 1u) / SLICE;
  let tq = WG / lanes;
  let kt_n = min(MAX_KT, TILE / hd4);
  let h = wg.y;
  let i0 = wg.x * tq;
  let count = min(tq, p.s - i0);
  // This thread's query of the tile and its share of the head: vec4s [c0, c0 + n4).
  let g = t / lanes;
  let c0 = (t % lanes) * SLICE;
  let n4 = min(SLICE, hd4 - min(hd4, c0));
  let live = g < count;
  let i = i0 + g;

  var qv: array<vec4f, SLICE>;
  var dov: array<vec4f, SLICE>;
  var acc: array<vec4f, SLICE>;
  var range = vec2u(0u, 0u);
  var d_part = 0.0;
  if (live) {
    range = key_range(i);
    let qb = p.q_off + i * p.q_stride + h * hd;
    let db = p.do_off + i * p.do_stride + h * hd;
    let ob = p.o_off + i * p.o_stride + h * hd;
    for (var c = 0u; c < SLICE; c++) {
      if (c < n4) {
        let e = 4u * (c0 + c);
        qv[c] = load_q(qb + e) * p.scale;
        dov[c] = load_dout(db + e);
        d_part += dot(dov[c], load_out(ob + e));
      }
    }
  }
  // D_i: the lanes' partial sums, added lane by lane.
  part[t] = vec2f(d_part, 0.0);
  if (t == 0u) {
    // The hull of the tile's nonempty key ranges (empty: first = end).
    var hull = vec2u(0xffffffffu, 0u);
    for (var r = 0u; r < count; r++) {
      let rr = key_range(i0 + r);
      if (rr.y > rr.x) {
        hull = vec2u(min(hull.x, rr.x), max(hull.y, rr.y));
      }
    }
    wg_hull = vec2u(min(hull.x, hull.y), hull.y);
  }
  let hull = workgroupUniformLoad(&wg_hull);
  var d_row = 0.0;
  for (var ln = 0u; ln < lanes; ln++) {
    d_row += part[g * lanes + ln].x;
  }
  workgroupBarrier();

  var m = NEG_BIG;
  var l = 0.0;
  var sc: array<f32, MAX_KT>;
  var dp: array<f32, MAX_KT>;
  for (var j0 = hull.x; j0 < hull.y; j0 += kt_n) {
    let n = min(kt_n, hull.y - j0);
    for (var e = t; e < n * hd4; e += WG) {
      let j = j0 + e / hd4;
      let d = 4u * (e % hd4);
      kt[e] = load_k(p.k_off + j * p.k_stride + h * hd + d);
      vt[e] = load_v(p.v_off + j * p.v_stride + h * hd + d);
    }
    workgroupBarrier();
    for (var j = 0u; j < MAX_KT; j++) {
      var s_j = 0.0;
      var p_j = 0.0;
      if (j < n) {
        for (var c = 0u; c < SLICE; c++) {
          if (c < n4) {
            s_j += dot(qv[c], kt[j * hd4 + c0 + c]);
            p_j += dot(dov[c], vt[j * hd4 + c0 + c]);
          }
        }
      }
      sc[j] = s_j;
      dp[j] = p_j;
    }
    if (lanes > 1u) {
      for (var j = 0u; j < MAX_KT; j++) {
        part[t * MAX_KT + j] = vec2f(sc[j], dp[j]);
      }
      workgroupBarrier();
      for (var j = 0u; j < MAX_KT; j++) {
        var total = vec2f(0.0);
        for (var ln = 0u; ln < lanes; ln++) {
          total += part[(g * lanes + ln) * MAX_KT + j];
        }
        sc[j] = total.x;
        dp[j] = total.y;
      }
    }
    // This query's keys of the tile: [lo, hi).
    var lo = 0u;
    var hi = 0u;
    if (live) {
      lo = min(n, max(range.x, j0) - j0);
      hi = max(lo, min(n, max(range.y, j0) - j0));
    }
    if (hi > lo) {
      var mx = m;
      for (var j = lo; j < hi; j++) {
        mx = max(mx, sc[j]);
      }
      let alpha = exp(m - mx);
      l *= alpha;
      for (var c = 0u; c < SLICE; c++) {
        acc[c] *= alpha;
      }
      for (var j = 0u; j < MAX_KT; j++) {
        if (j >= lo && j < hi) {
          let pj = exp(sc[j] - mx);
          l += pj;
          let w = pj * (dp[j] - d_row);
          for (var c = 0u; c < SLICE; c++) {
            if (c < n4) {
              acc[c] += w * kt[j * hd4 + c0 + c];
            }
          }
        }
      }
      m = mx;
    }
    workgroupBarrier();
  }

  if (live) {
    let inv = select(0.0, p.scale / l, l > 0.0);
    let qb = p.dq_off + i * p.dq_stride + h * hd;
    for (var c = 0u; c < SLICE; c++) {
      if (c < n4) {
        let o = acc[c] * inv;
        let e = qb + 4u * (c0 + c);
        dq[e] = o.x;
        dq[e + 1u] = o.y;
        dq[e + 2u] = o.z;
        dq[e + 3u] = o.w;
      }
    }
    if (c0 == 0u) {
      let at = p.scratch_off + 3u * (i * p.heads + h);
      scratch[at] = bitcast<u32>(m);
      scratch[at + 1u] = bitcast<u32>(l);
      scratch[at + 2u] = bitcast<u32>(d_row);
      if (h == 0u) {
        let sp = p.scratch_off + 3u * p.s * p.heads + 2u * i;
        scratch[sp] = range.x;
        scratch[sp + 1u] = range.y;
      }
    }
  }
}
