// Writes embedding row ids from tokens kept on the GPU, so that generated tokens are fed back
// without a readback: for frame t < frames and term k < terms,
// ids[ids_off + t · ids_terms + k] = base + k · stride + tokens[tok_off + k · tok_stride + t].
// (VALL-E: term k of a response row is table R[k+1] at row code_k; AR/len/STT have one term.)
//
// Bindings: ids (·) u32, overwritten in the listed places | tokens (·) u32.
// Grid: (ceil(frames · terms / 256)).

struct Params {
  frames: u32,
  terms: u32,
  ids_terms: u32,
  ids_off: u32,
  base: u32,
  stride: u32,
  tok_off: u32,
  tok_stride: u32,
}

@group(0) @binding(0) var<storage, read_write> ids: array<u32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.frames * p.terms) {
    return;
  }
  let t = i / p.terms;
  let k = i % p.terms;
  ids[p.ids_off + t * p.ids_terms + k] = p.base + k * p.stride + tokens[p.tok_off + k * p.tok_stride + t];
}
