// Split attention for decode (flash-decoding), second half: merges the `splits` partial results
// (m, l, acc) of each (head, query) that attention_split.wgsl wrote, in split order:
// M = max m_s, out = Σ exp(m_s − M) · acc_s / Σ exp(m_s − M) · l_s.
//
// Bindings: out (S, ·) f32, head h of row i at o_off + i · o_stride + h · head_dim | partials
// (S, heads, splits, head_dim + 2) f32 from part_off.
// Grid: (heads, S).

struct Params {
  heads: u32,
  head_dim: u32,
  splits: u32,
  part_off: u32,
  o_off: u32,
  o_stride: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let h = wg.x;
  let i = wg.y;
  let hd = p.head_dim;
  let base = p.part_off + (i * p.heads + h) * p.splits * (hd + 2u);
  var mx = NEG_BIG;
  for (var s = 0u; s < p.splits; s++) {
    mx = max(mx, partials[base + s * (hd + 2u)]);
  }
  var l = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let at = base + s * (hd + 2u);
    l += exp(partials[at] - mx) * partials[at + 1u];
  }
  let ob = p.o_off + i * p.o_stride + h * hd;
  for (var d = t; d < hd; d += WG) {
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s++) {
      let at = base + s * (hd + 2u);
      acc += exp(partials[at] - mx) * partials[at + 2u + d];
    }
    out[ob + d] = acc / l;
  }
}
