// embedding_sum.wgsl over a q8_0 table (src/quant/FORMATS.md §3: a row of d values is d/64 pairs
// of 17 words, the two f16 scales then 2 × 32 int8): out[r, :] (+)= Σ_t table[ids[r · terms + t], :],
// each value d · q (exact in f32), summed as the float kernel sums.
//
// Bindings: out (rows, d) f32 at out_off | ids (rows, terms) u32 at ids_off | table q8_0 (·, d),
// d % 64 == 0. Grid: (ceil(d / 256), rows).

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
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

// Value c of the row starting at word `row`.
fn value(row: u32, c: u32) -> f32 {
  let base = row + (c / 64u) * 17u;
  let r = c % 64u;
  let q = bitcast<i32>(table[base + 1u + r / 4u] << (24u - 8u * (r % 4u))) >> 24u;
  let s = unpack2x16float(table[base]);
  return select(s.x, s.y, r >= 32u) * f32(q);
}

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
  let row_words = (p.d / 64u) * 17u;
  for (var t = 0u; t < p.terms; t++) {
    let id = ids[p.ids_off + r * p.terms + t];
    if (id != 0xffffffffu) {
      sum += value(id * row_words, c);
    }
  }
  out[o] = sum;
}
