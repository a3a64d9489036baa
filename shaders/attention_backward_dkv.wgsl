// Attention backward, second pass (flash-attention 2's, key-major), after
// attention_backward_dq.wgsl has left each row's softmax statistics m_i, l_i and D_i = dO_i · O_i
// in `scratch`:
// for key j of head h and the queries i that see it (i ∈ [key_queries[2j], key_queries[2j] +
// key_queries[2j + 1]) whose own key range, also in `scratch`, holds j),
//   P_ij = exp(scale · q_i · k_j − m_i) / l_i,  dS_ij = P_ij (dO_i · v_j − D_i),
//   dv_j = Σ_i P_ij dO_i,  dk_j = scale · Σ_i dS_ij q_i.
//
// Threads: LANES = ceil(head_dim / 32) per key, each owning 32 dimensions of it (8 vec4s of k, v
// and of the two accumulators), so a tile holds TK = 64 / LANES keys. Query tiles of
// QT = min(8, 256 / (head_dim / 4)) queries (scaled q and dO as vec4s, with their m, 1 / l, D and
// key ranges) are staged in workgroup memory; the tile walks the hull of its keys' query ranges,
// each key taking only its own queries. Lanes' partial dot products meet in workgroup memory.
//
// Bindings: dk, dv (S, ·) f32 | q, k, v, dout (S, ·) f32 | scratch u32 words as
// attention_backward_dq leaves them from scratch_off | key_queries (S, 2) u32 from kq_off. Head h
// of row r of x starts at x_off + r · x_stride + h · head_dim. head_dim is a multiple of 4, at
// most 256.
// Grid: (ceil(S / TK), heads). The CPU twin is wasm/attention_backward.c.

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
  dk_off: u32,
  dk_stride: u32,
  dv_off: u32,
  dv_stride: u32,
  kq_off: u32,
  scratch_off: u32,
}

@group(0) @binding(0) var<storage, read_write> dk: array<f32>;
@group(0) @binding(1) var<storage, read_write> dv: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read> scratch: array<u32>;
@group(0) @binding(7) var<storage, read> key_queries: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;
// vec4s of a lane's share of the head (32 dimensions).
const SLICE: u32 = 8u;
// The most queries of a query tile, and vec4s of a q or dO tile (4 KiB each).
const MAX_QT: u32 = 8u;
const TILE: u32 = 256u;

var<workgroup> qt: array<vec4f, TILE>;
var<workgroup> dt: array<vec4f, TILE>;
// Per query of the tile: (m, 1 / l, D) and its key range [first, end).
var<workgroup> stats: array<vec3f, MAX_QT>;
var<workgroup> ranges: array<vec2u, MAX_QT>;
// Lanes' partial (score, dP) per thread and query of the tile.
var<workgroup> part: array<vec2f, 512>;
// The hull of the tile's query ranges.
var<workgroup> wg_hull: vec2u;

// Query range [first, end) of key j.
fn query_range(j: u32) -> vec2u {
  let first = key_queries[p.kq_off + 2u * j];
  return vec2u(first, first + key_queries[p.kq_off + 2u * j + 1u]);
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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let hd = p.head_dim;
  let hd4 = hd / 4u;
  let lanes = (hd4 + SLICE - 1u) / SLICE;
  let tk = WG / lanes;
  let qt_n = min(MAX_QT, TILE / hd4);
  let h = wg.y;
  let j0 = wg.x * tk;
  let count = min(tk, p.s - j0);
  // This thread's key of the tile and its share of the head: vec4s [c0, c0 + n4).
  let g = t / lanes;
  let c0 = (t % lanes) * SLICE;
  let n4 = min(SLICE, hd4 - min(hd4, c0));
  let live = g < count;
  let j = j0 + g;

  var kv: array<vec4f, SLICE>;
  var vv: array<vec4f, SLICE>;
  var dkv: array<vec4f, SLICE>;
  var dvv: array<vec4f, SLICE>;
  var range = vec2u(0u, 0u);
  if (live) {
    range = query_range(j);
    let kb = p.k_off + j * p.k_stride + h * hd;
    let vb = p.v_off + j * p.v_stride + h * hd;
    for (var c = 0u; c < SLICE; c++) {
      if (c < n4) {
        kv[c] = load_k(kb + 4u * (c0 + c));
        vv[c] = load_v(vb + 4u * (c0 + c));
      }
    }
  }
  if (t == 0u) {
    // The hull of the tile's nonempty query ranges (empty: first = end).
    var hull = vec2u(0xffffffffu, 0u);
    for (var r = 0u; r < count; r++) {
      let rr = query_range(j0 + r);
      if (rr.y > rr.x) {
        hull = vec2u(min(hull.x, rr.x), max(hull.y, rr.y));
      }
    }
    wg_hull = vec2u(min(hull.x, hull.y), hull.y);
  }
  let hull = workgroupUniformLoad(&wg_hull);

  let spans_at = p.scratch_off + 3u * p.s * p.heads;
  var sc: array<f32, MAX_QT>;
  var dp: array<f32, MAX_QT>;
  for (var i0 = hull.x; i0 < hull.y; i0 += qt_n) {
    let n = min(qt_n, hull.y - i0);
    for (var e = t; e < n * hd4; e += WG) {
      let i = i0 + e / hd4;
      let d = 4u * (e % hd4);
      qt[e] = load_q(p.q_off + i * p.q_stride + h * hd + d) * p.scale;
      dt[e] = load_dout(p.do_off + i * p.do_stride + h * hd + d);
    }
    if (t < n) {
      let at = p.scratch_off + 3u * ((i0 + t) * p.heads + h);
      let l = bitcast<f32>(scratch[at + 1u]);
      stats[t] = vec3f(bitcast<f32>(scratch[at]), 1.0 / l, bitcast<f32>(scratch[at + 2u]));
      let sp = spans_at + 2u * (i0 + t);
      ranges[t] = vec2u(scratch[sp], scratch[sp + 1u]);
    }
    workgroupBarrier();
    for (var i = 0u; i < MAX_QT; i++) {
      var s_i = 0.0;
      var p_i = 0.0;
      if (i < n) {
        for (var c = 0u; c < SLICE; c++) {
          if (c < n4) {
            s_i += dot(kv[c], qt[i * hd4 + c0 + c]);
            p_i += dot(vv[c], dt[i * hd4 + c0 + c]);
          }
        }
      }
      sc[i] = s_i;
      dp[i] = p_i;
    }
    if (lanes > 1u) {
      for (var i = 0u; i < MAX_QT; i++) {
        part[t * MAX_QT + i] = vec2f(sc[i], dp[i]);
      }
      workgroupBarrier();
      for (var i = 0u; i < MAX_QT; i++) {
        var total = vec2f(0.0);
        for (var ln = 0u; ln < lanes; ln++) {
          total += part[(g * lanes + ln) * MAX_QT + i];
        }
        sc[i] = total.x;
        dp[i] = total.y;
      }
    }
    if (live) {
      for (var i = 0u; i < MAX_QT; i++) {
        let r = ranges[i];
        let own = i < n && i0 + i >= range.x && i0 + i < range.y && j >= r.x && j < r.y;
        if (own) {
          let st = stats[i];
          let pij = exp(sc[i] - st.x) * st.y;
          let ds = pij * (dp[i] - st.z);
          for (var c = 0u; c < SLICE; c++) {
            if (c < n4) {
              dvv[c] += pij * dt[i * hd4 + c0 + c];
              dkv[c] += ds * qt[i * hd4 + c0 + c];
            }
          }
        }
      }
    }
    workgroupBarrier();
  }

  if (live) {
    let kb = p.dk_off + j * p.dk_stride + h * hd;
    let vb = p.dv_off + j * p.dv_stride + h * hd;
    for (var c = 0u; c < SLICE; c++) {
      if (c < n4) {
        let e = 4u * (c0 + c);
        dk[kb + e] = dkv[c].x;
        dk[kb + e + 1u] = dkv[c].y;
        dk[kb + e + 2u] = dkv[c].z;
        dk[kb + e + 3u] = dkv[c].w;
        dv[vb + e] = dvv[c].x;
        dv[vb + e + 1u] = dvv[c].y;
        dv[vb + e + 2u] = dvv[c].z;
        dv[vb + e + 3u] = dvv[c].w;
      }
    }
  }
}
