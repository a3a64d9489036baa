// Input embeddings as sums of table rows: out[r, :] (+)= Σ_t table[ids[r · terms + t], :].
// All embedding tables of a model live stacked in one buffer, so each id is an absolute row;
// an id of 0xffffffff is an empty term. With terms = 1 this is a plain gather.
//
// Bindings: out (rows, d) f32 at out_off | ids (rows, terms) u32 at ids_off | table (·, d) W.
// Grid: (ceil(d / 256), rows).

struct Params {
  rows: u32,
  d: u32,
  terms: u32,
  accumulate: u32,
  out_off: u32,
  ids_off: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.d || r >= p.rows) {
    return;
  }
  let o = p.out_off + r * p.d + c;
  var sum = 0.0;
  if (p.accumulate != 0u) {
    sum = out[o];
  }
  for (var t = 0u; t < p.terms; t++) {
    let id = ids[p.ids_off + r * p.terms + t];
    if (id != 0xffffffffu) {
      sum += f32(table[id * p.d + c]);
    }
  }
  out[o] = sum;
}
