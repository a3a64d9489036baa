// Scaled dot-product attention, flash-attention style: a workgroup takes a tile of consecutive
// queries of one head and walks their keys in tiles staged in workgroup memory (K and V as
// vec4s), so that each key and value loaded serves every query of the tile; each query keeps an
// online softmax (running max m and sum l) and its output in registers.
// out_i = softmax_j(scale · q_i · k_j) v_j over keys j < kv_len (causal: j <= q_start + i, the
// query's own index in the key sequence). With spans (packed sequences, several rows of a batch
// in one buffer), query i sees keys [spans[2i], spans[2i] + spans[2i + 1]) instead: its own row's
// span, causal or not as the table says; kv_len, q_start and causal are then unused.
//
// Threads: LANES = ceil(head_dim / 64) per query, each owning 64 dimensions of it (16 vec4s of
// the scaled query and of the accumulator), so a tile holds TQ = 64 / LANES queries (64 for
// head_dim <= 64). Key tiles hold KT = min(16, 256 / ceil(head_dim / 4)) keys.
// A tile splits into runs of queries with the same first key (a packed batch's rows differ), and
// a run walks the hull of its queries' key ranges from that first key, KT keys at a time; a query
// scores only its own keys of a key tile, in order. Its arithmetic therefore depends neither on
// the queries beside it nor on where its keys lie: a packed row's attention equals the row's
// attention alone, bit for bit.
//
// Bindings: out (S, ·) f32 | q (S, ·) f32 | k (kv_len, ·) f32 | v (kv_len, ·) f32 | spans (S, 2)
// u32 from spans_off (bound but unread when spans_on is 0). Head h of row r starts at
// <x>_off + r · <x>_stride + h · head_dim. head_dim <= 256.
// Grid: (ceil(S / TQ), heads). The CPU twin is wasm/attention.c.

struct Params {
  s: u32,
  kv_len: u32,
  q_start: u32,
  heads: u32,
  head_dim: u32,
  causal: u32,
  scale: f32,
  q_off: u32,
  q_stride: u32,
  k_off: u32,
  v_off: u32,
  kv_stride: u32,
  o_off: u32,
  o_stride: u32,
  spans_on: u32,
  spans_off: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> spans: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;
// vec4s of a lane's share of the head (64 dimensions).
const SLICE: u32 = 16u;
// The most keys of a key tile, and vec4s of a K or V tile (4 KiB each).
const MAX_KT: u32 = 16u;
const TILE: u32 = 256u;

var<workgroup> kt: array<vec4f, TILE>;
var<workgroup> vt: array<vec4f, TILE>;
// Lanes' partial scores when a query has several lanes (head_dim > 64).
var<workgroup> part: array<f32, 1024>;
// The current run: (first key, end of the hull, index after its last query).
var<workgroup> wg_run: vec3u;

// Key range [first, end) of query i.
fn key_range(i: u32) -> vec2u {
  if (p.spans_on != 0u) {
    let first = spans[p.spans_off + 2u * i];
    return vec2u(first, first + spans[p.spans_off + 2u * i + 1u]);
  }
  if (p.causal != 0u) {
    return vec2u(0u, min(p.kv_len, p.q_start + i + 1u));
  }
  return vec2u(0u, p.kv_len);
}

// Elements [d, d + 4) of a row of q, k or v from `base`, zero past head_dim.
fn load_q(base: u32, d: u32, hd: u32) -> vec4f {
  if (d + 4u <= hd) {
    return vec4f(q[base + d], q[base + d + 1u], q[base + d + 2u], q[base + d + 3u]);
  }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (d + c < hd) {
      r[c] = q[base + d + c];
    }
  }
  return r;
}

fn load_k(base: u32, d: u32, hd: u32) -> vec4f {
  if (d + 4u <= hd) {
    return vec4f(k[base + d], k[base + d + 1u], k[base + d + 2u], k[base + d + 3u]);
  }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (d + c < hd) {
      r[c] = k[base + d + c];
    }
  }
  return r;
}

fn load_v(base: u32, d: u32, hd: u32) -> vec4f {
  if (d + 4u <= hd) {
    return vec4f(v[base + d], v[base + d + 1u], v[base + d + 2u], v[base + d + 3u]);
  }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (d + c < hd) {
      r[c] = v[base + d + c];
    }
  }
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let hd = p.head_dim;
  let hd4 = (hd + 3u) / 4u;
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
  var acc: array<vec4f, SLICE>;
  var range = vec2u(0u, 0u);
  if (live) {
    range = key_range(i);
    let qb = p.q_off + i * p.q_stride + h * hd;
    for (var c = 0u; c < SLICE; c++) {
      if (c < n4) {
        qv[c] = load_q(qb, 4u * (c0 + c), hd) * p.scale;
      }
    }
  }
  var m = NEG_BIG;
  var l = 0.0;
  var sc: array<f32, MAX_KT>;

  var r0 = 0u;
  loop {
    if (t == 0u) {
      // The run from query r0: queries with its first key, and the end of their hull.
      let first = key_range(i0 + r0).x;
      var end = key_range(i0 + r0).y;
      var r1 = r0 + 1u;
      for (; r1 < count; r1++) {
        let rr = key_range(i0 + r1);
        if (rr.x != first) {
          break;
        }
        end = max(end, rr.y);
      }
      wg_run = vec3u(first, end, r1);
    }
    let run = workgroupUniformLoad(&wg_run);
    let mine = live && g >= r0 && g < run.z;
    for (var j0 = run.x; j0 < run.y; j0 += kt_n) {
      let n = min(kt_n, run.y - j0);
      for (var e = t; e < n * hd4; e += WG) {
        let row = (j0 + e / hd4) * p.kv_stride + h * hd;
        let d = 4u * (e % hd4);
        kt[e] = load_k(p.k_off + row, d, hd);
        vt[e] = load_v(p.v_off + row, d, hd);
      }
      workgroupBarrier();
      var own = 0u;
      if (mine && range.y > j0) {
        own = min(n, range.y - j0);
      }
      for (var j = 0u; j < MAX_KT; j++) {
        if (j < own) {
          var dot_j = 0.0;
          for (var c = 0u; c < SLICE; c++) {
            if (c < n4) {
              dot_j += dot(qv[c], kt[j * hd4 + c0 + c]);
            }
          }
          sc[j] = dot_j;
        }
      }
      if (lanes > 1u) {
        // Add the lanes' partial scores, lane by lane.
        for (var j = 0u; j < own; j++) {
          part[t * MAX_KT + j] = sc[j];
        }
        workgroupBarrier();
        for (var j = 0u; j < own; j++) {
          var total = 0.0;
          for (var ln = 0u; ln < lanes; ln++) {
            total += part[(g * lanes + ln) * MAX_KT + j];
          }
          sc[j] = total;
        }
      }
      if (own > 0u) {
        var mx = m;
        for (var j = 0u; j < own; j++) {
          mx = max(mx, sc[j]);
        }
        let alpha = exp(m - mx);
        l *= alpha;
        for (var c = 0u; c < SLICE; c++) {
          acc[c] *= alpha;
        }
        for (var j = 0u; j < MAX_KT; j++) {
          if (j < own) {
            let pj = exp(sc[j] - mx);
            l += pj;
            for (var c = 0u; c < SLICE; c++) {
              if (c < n4) {
                acc[c] += pj * vt[j * hd4 + c0 + c];
              }
            }
          }
        }
        m = mx;
      }
      workgroupBarrier();
    }
    r0 = run.z;
    workgroupBarrier();
    if (r0 >= count) {
      break;
    }
  }

  if (live) {
    let ob = p.o_off + i * p.o_stride + h * hd;
    for (var c = 0u; c < SLICE; c++) {
      if (c < n4) {
        let o = acc[c] / l;
        for (var e = 0u; e < 4u; e++) {
          let d = 4u * (c0 + c) + e;
          if (d < hd) {
            out[ob + d] = o[e];
          }
        }
      }
    }
  }
}
