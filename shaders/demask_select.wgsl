// NAR-len masking step (vall_e/models/ar_nar.py: forward_nar_masked): the `count` positions with
// the smallest scores get the mask token, then masked[i] = (tokens[i] == mask). Ranks are
// computed directly: rank(i) = #{j : s_j < s_i, or s_j == s_i and j < i}, so equal scores are
// masked in index order (the original leaves ties to torch.topk's internal order).
//
// Bindings: tokens (length) u32 at tok_off, updated | masked (length) u32 at masked_off |
// scores (length) f32 at score_off.
// Grid: (1). One workgroup; O(length²) comparisons, trivial next to the two forward passes.

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

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  for (var i = li; i < p.length; i += 256u) {
    let s = scores[p.score_off + i];
    var rank = 0u;
    for (var j = 0u; j < p.length; j++) {
      let o = scores[p.score_off + j];
      if (o < s || (o == s && j < i)) {
        rank++;
      }
    }
    var t = tokens[p.tok_off + i];
    if (rank < p.count) {
      t = p.mask;
      tokens[p.tok_off + i] = t;
    }
    masked[p.masked_off + i] = select(0u, 1u, t == p.mask);
  }
}
