// out[out_off + g] (+)= Σ over chunk g of x (its squares when `square`): workgroup g reduces
// x[g · chunk, min((g + 1) · chunk, n)), each invocation every 256th element with compensated
// (Kahan) summation, then a tree. Two dispatches make a reduction of millions of elements without
// atomics: squares of chunks into partials, then the partials' sum added to the total.
//
// Bindings: out f32 at out_off | x (n) f32 at x_off.
// Grid: (ceil(n / chunk)).

struct Params {
  n: u32,
  x_off: u32,
  out_off: u32,
  chunk: u32,
  square: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let start = wg.x * p.chunk;
  let end = min(start + p.chunk, p.n);
  var acc = vec2f(0.0);
  for (var i = start + li; i < end; i += 256u) {
    let v = x[p.x_off + i];
    acc = kahan_add(acc, select(v, v * v, p.square != 0u));
  }
  let total = group_sum(acc.x, li, 256u);
  if (li == 0u) {
    let o = p.out_off + wg.x;
    out[o] = select(total, out[o] + total, p.accumulate != 0u);
  }
}
