// Split attention for decode (flash-decoding), first half: the keys of each (head, query) are
// split into `splits` consecutive chunks of ceil(count / splits) keys of the query's own range,
// one workgroup each, so that one query over 16 heads still fills 16 · splits workgroups. A
// workgroup scores 64 keys at a time (a thread per key), keeps an online softmax across them and
// sums the weighted values a thread per output dimension (G = 64 / head_dim groups of head_dim
// threads for small heads, each group its share of the keys, added at the end). It writes its
// chunk's partial result, (m, l, acc[head_dim]) = (max score, Σ exp(score − m),
// Σ exp(score − m) · v), for attention_combine.wgsl to merge; an empty chunk writes (NEG_BIG, 0,
// 0). The chunks depend on the query's own key count only, so a packed row's result equals the
// row's alone, bit for bit. Keys and masks as in attention.wgsl.
//
// Bindings: partials (S, heads, splits, head_dim + 2) f32 from part_off | q | k | v | spans, as
// in attention.wgsl. head_dim <= 256.
// Grid: (splits, heads, S).

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
  part_off: u32,
  splits: u32,
  spans_on: u32,
  spans_off: u32,
}

@group(0) @binding(0) var<storage, read_write> partials: array<f32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> spans: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;

var<workgroup> qs: array<f32, 256>;
var<workgroup> probs: array<f32, WG>;
var<workgroup> red: array<f32, WG>;
// The chunk's keys: [first, end) of the key sequence.
var<workgroup> wg_keys: vec2u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let split = wg.x;
  let h = wg.y;
  let i = wg.z;
  let hd = p.head_dim;
  let qb = p.q_off + i * p.q_stride + h * hd;
  for (var d = t; d < hd; d += WG) {
    qs[d] = q[qb + d] * p.scale;
  }
  if (t == 0u) {
    var first = 0u;
    var count = p.kv_len;
    if (p.spans_on != 0u) {
      first = spans[p.spans_off + 2u * i];
      count = spans[p.spans_off + 2u * i + 1u];
    } else if (p.causal != 0u) {
      count = min(p.kv_len, p.q_start + i + 1u);
    }
    let chunk = (count + p.splits - 1u) / p.splits;
    let begin = min(count, split * chunk);
    wg_keys = vec2u(first + begin, first + min(count, begin + chunk));
  }
  let keys = workgroupUniformLoad(&wg_keys);

  // This thread's output dimensions (d0, d0 + 64, ...) and key group.
  let groups = max(1u, WG / hd);
  let d0 = t % hd;
  let g = t / hd;
  let summing = g < groups;
  var m = NEG_BIG;
  var l = 0.0;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var j0 = keys.x; j0 < keys.y; j0 += WG) {
    let j = j0 + t;
    var score = NEG_BIG;
    if (j < keys.y) {
      let kb = p.k_off + j * p.kv_stride + h * hd;
      var dot_j = 0.0;
      for (var e = 0u; e < hd; e++) {
        dot_j += qs[e] * k[kb + e];
      }
      score = dot_j;
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
    if (j < keys.y) {
      pj = exp(score - m_new);
    }
    probs[t] = pj;
    let chunk_sum = group_sum(pj, t, WG);
    let alpha = exp(m - m_new);
    l = l * alpha + chunk_sum;
    let n = min(WG, keys.y - j0);
    if (summing) {
      for (var r = 0u; r < 4u; r++) {
        let d = d0 + r * WG;
        if (d < hd) {
          var sum = 0.0;
          for (var jj = g; jj < n; jj += groups) {
            sum += probs[jj] * v[p.v_off + (j0 + jj) * p.kv_stride + h * hd + d];
          }
          acc[r] = acc[r] * alpha + sum;
        }
      }
    }
    m = m_new;
    workgroupBarrier();
  }

  // Add up the groups' sums of each dimension (one group when head_dim >= 64).
  let base = p.part_off + ((i * p.heads + h) * p.splits + split) * (hd + 2u);
  if (groups > 1u) {
    red[t] = select(0.0, acc[0], summing);
    workgroupBarrier();
    if (t < hd) {
      var total = 0.0;
      for (var gg = 0u; gg < groups; gg++) {
        total += red[gg * hd + t];
      }
      partials[base + 2u + t] = total;
    }
  } else {
    for (var r = 0u; r < 4u; r++) {
      let d = d0 + r * WG;
      if (d < hd) {
        partials[base + 2u + d] = acc[r];
      }
    }
  }
  if (t == 0u) {
    partials[base] = m;
    partials[base + 1u] = l;
  }
}
