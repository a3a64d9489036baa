// Fused softmax cross-entropy, forward and backward, in place over rows of logits x (rows, v):
// with l = labels[r] and w = weights[r], a row whose label is at least v (IGNORE_LABEL included)
// gets x[r] = 0 and stats[r] = (0, 0); any other gets
//   stats[r] = (w · (logsumexp(x[r]) − x[r, l]), 1 if fewer than top_k logits exceed x[r, l] else 0)
//   x[r, j] = w · (softmax(x[r])_j − [j == l])
// (the label is among the top-k when fewer than k logits are strictly larger: ties count for it).
//
// Bindings: x (rows, v) f32 at x_off, overwritten by the gradient | stats (rows, 2) f32 at
// stats_off | labels (rows) u32 at labels_off | weights (rows) f32 at weights_off.
// Grid: grid1d(rows), one workgroup of 256 threads per row: the maximum, then Σ exp(x − max) and
// the count of larger logits (tree reductions), then the gradient. Every invocation reduces, also
// on ignored rows (the label is read from storage, so it cannot steer the barriers).

struct Params {
  rows: u32,
  v: u32,
  x_off: u32,
  stats_off: u32,
  labels_off: u32,
  weights_off: u32,
  top_k: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

// The maximum of v over the 256 invocations.
fn group_max(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] = max(red[li], red[li + s]);
    }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();
  return m;
}

@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let r = wg.x + wg.y * nwg.x;
  if (r >= p.rows) {
    return;
  }
  let base = p.x_off + r * p.v;
  let label = labels[p.labels_off + r];
  let valid = label < p.v;
  let target_logit = select(0.0, x[base + min(label, p.v - 1u)], valid);
  var m = NEG_BIG;
  for (var j = li; j < p.v; j += 256u) {
    m = max(m, x[base + j]);
  }
  m = group_max(m, li);
  var sum = 0.0;
  var above = 0.0;
  for (var j = li; j < p.v; j += 256u) {
    let v = x[base + j];
    sum += exp(v - m);
    above += select(0.0, 1.0, v > target_logit);
  }
  sum = group_sum(sum, li, 256u);
  above = group_sum(above, li, 256u);
  let w = select(0.0, weights[p.weights_off + r], valid);
  let inv = 1.0 / sum;
  for (var j = li; j < p.v; j += 256u) {
    let g = exp(x[base + j] - m) * inv - select(0.0, 1.0, j == label);
    x[base + j] = select(0.0, w * g, valid);
  }
  if (li == 0u) {
    let loss = w * (m + log(sum) - target_logit);
    stats[p.stats_off + 2u * r] = select(0.0, loss, valid);
    stats[p.stats_off + 2u * r + 1u] = select(0.0, 1.0, valid && above < f32(p.top_k));
  }
}
