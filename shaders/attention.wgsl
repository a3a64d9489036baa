// Scaled dot-product attention, one (head, query) per workgroup, online softmax over chunks of
// 256 keys, so any key count works and the keys may come from a growing KV cache. Each thread
// scores one key of a chunk; for the weighted sum of values the threads split into G = 256 / hd
// groups of hd (one thread per output dimension), each group summing its share of the chunk's
// keys, and the groups' sums are added at the end.
// out_i = softmax_j(scale · q_i · k_j) v_j over keys j < kv_len (causal: j <= q_start + i, the
// query's own index in the key sequence). With spans (packed sequences, several rows of a batch
// in one buffer), query i sees keys [spans[2i], spans[2i] + spans[2i + 1]) instead: its own row's
// span, causal or not as the table says; kv_len, q_start and causal are then unused.
//
// Bindings: out (S, ·) f32 | q (S, ·) f32 | k (kv_len, ·) f32 | v (kv_len, ·) f32 | spans (S, 2)
// u32 from spans_off (bound but unread when spans_on is 0). Head h of row r starts at
// <x>_off + r · <x>_stride + h · head_dim. head_dim <= 256.
// Grid: (heads, S).

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

const WG: u32 = 256u;

var<workgroup> qs: array<f32, 256>;
var<workgroup> probs: array<f32, WG>;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let h = wg.x;
  let i = wg.y;
  let hd = p.head_dim;
  let qb = p.q_off + i * p.q_stride + h * hd;
  for (var d = t; d < hd; d += WG) {
    qs[d] = q[qb + d] * p.scale;
  }
  workgroupBarrier();

  var n_keys = p.kv_len;
  var first = 0u;
  if (p.spans_on != 0u) {
    first = spans[p.spans_off + 2u * i];
    n_keys = spans[p.spans_off + 2u * i + 1u];
  } else if (p.causal != 0u) {
    n_keys = min(p.kv_len, p.q_start + i + 1u);
  }
  let k_base = p.k_off + first * p.kv_stride;
  let v_base = p.v_off + first * p.kv_stride;
  // This thread's output dimension and key group.
  let groups = max(1u, WG / hd);
  let d = t % hd;
  let g = t / hd;
  let summing = g < groups;
  var m = NEG_BIG;
  var l = 0.0;
  var acc = 0.0;
  for (var j0 = 0u; j0 < n_keys; j0 += WG) {
    let j = j0 + t;
    var score = NEG_BIG;
    if (j < n_keys) {
      let kb = k_base + j * p.kv_stride + h * hd;
      var dot = 0.0;
      for (var e = 0u; e < hd; e++) {
        dot += qs[e] * k[kb + e];
      }
      score = dot;
    }
    red[t] = score;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (t < s) {
        red[t] = max(red[t], red[t + s]);
      }
      workgroupBarrier();
    }
    let m_new = max(m, red[0]);
    workgroupBarrier();
    var pj = 0.0;
    if (j < n_keys) {
      pj = exp(score - m_new);
    }
    probs[t] = pj;
    let chunk_sum = group_sum(pj, t, WG);
    let alpha = exp(m - m_new);
    l = l * alpha + chunk_sum;
    let chunk = min(WG, n_keys - j0);
    if (summing) {
      var sum = 0.0;
      for (var jj = g; jj < chunk; jj += groups) {
        sum += probs[jj] * v[v_base + (j0 + jj) * p.kv_stride + h * hd + d];
      }
      acc = acc * alpha + sum;
    }
    m = m_new;
    workgroupBarrier();
  }
  // Add up the groups' sums of each dimension.
  red[t] = select(0.0, acc, summing);
  workgroupBarrier();
  if (t < hd) {
    var total = 0.0;
    for (var gg = 0u; gg < groups; gg++) {
      total += red[gg * hd + t];
    }
    out[p.o_off + i * p.o_stride + h * hd + t] = total / l;
  }
}
