// NAR-len masking step (vall_e/models/ar_nar.py: forward_nar_masked): the `count` positions with
// the smallest scores get the mask token, then masked[i] = (tokens[i] == mask). Ranks are
// computed directly: rank(i) = #{j : s_j < s_i, or s_j == s_i and j < i}, so equal scores are
// masked in index order (the original leaves ties to torch.topk's internal order).
//
// Bindings: tokens (length) u32 at tok_off, updated | masked (length) u32 at masked_off |
// scores (length) f32 at score_off.
// Grid: (ceil(length / 64), ·), a 2-D grid counting as consecutive rows of workgroups. One
// position per invocation, so the whole GPU shares the O(length²) comparisons; each workgroup
// reads the scores through workgroup memory, 64 at a time. A rank needs no second stage: it is
// an exact count, and no position's result depends on another's.

struct Params {
  length: u32,
  count: u32,
  mask: u32,
  tok_off: u32,
  masked_off: u32,
  score_off: u32,
}

@group(0) @binding(0) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(1) var<storage, read_write> masked: array<u32>;
@group(0) @binding(2) var<storage, read> scores: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;

var<workgroup> tile: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  var s = 0.0;
  if (i < p.length) {
    s = scores[p.score_off + i];
  }
  var rank = 0u;
  for (var base = 0u; base < p.length; base += WG) {
    if (base + li < p.length) {
      tile[li] = scores[p.score_off + base + li];
    }
    workgroupBarrier();
    let n = min(WG, p.length - base);
    for (var e = 0u; e < n; e++) {
      let o = tile[e];
      if (o < s || (o == s && base + e < i)) {
        rank++;
      }
    }
    workgroupBarrier();
  }
  if (i < p.length) {
    var t = tokens[p.tok_off + i];
    if (rank < p.count) {
      t = p.mask;
      tokens[p.tok_off + i] = t;
    }
    masked[p.masked_off + i] = select(0u, 1u, t == p.mask);
  }
}
