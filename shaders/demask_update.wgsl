// NAR-len update after sampling: masked positions take the sampled token; with "masked only"
// scoring, unmasked positions get score 1 (the scores of masked ones were written by the scoring
// sampler call).
//
// Bindings: tokens (length) u32 at tok_off, updated | scores (length) f32 at score_off |
// sampled (length) u32 at sampled_off | masked (length) u32 at masked_off.
// Grid: (ceil(length / 256)).

struct Params {
  length: u32,
  masked_only: u32,
  tok_off: u32,
  score_off: u32,
  sampled_off: u32,
  masked_off: u32,
}

@group(0) @binding(0) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(1) var<storage, read_write> scores: array<f32>;
@group(0) @binding(2) var<storage, read> sampled: array<u32>;
@group(0) @binding(3) var<storage, read> masked: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.length) {
    return;
  }
  if (masked[p.masked_off + i] != 0u) {
    tokens[p.tok_off + i] = sampled[p.sampled_off + i];
  } else if (p.masked_only != 0u) {
    scores[p.score_off + i] = 1.0;
  }
}
