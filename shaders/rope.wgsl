// Rotary position embedding with the rotate-half (NeoX / Hugging Face) pairing, in place:
// for j < half = head_dim / 2, (x_j, x_{j+half}) ← (x_j c − x_{j+half} s, x_{j+half} c + x_j s)
// with c, s = cos, sin of angle_j(pos[t]); with `inverse`, s = −sin: the rotation by −angle,
// which is also the gradient of the rotation (its transpose). The angles' cos/sin come from a table built on the CPU
// (see ops/rope.ts): WGSL's sin/cos are only guaranteed to 2^-11 and positions reach thousands.
//
// Bindings: x (S rows of `heads` heads of head_dim) f32 at x_off, row stride row_stride | pos (S) u32
// at pos_off | table (max_pos, half) vec2f (cos, sin).
// Grid: (ceil(S · heads · half / 256), ·), a 2-D grid counting as consecutive rows of workgroups.
// One thread per rotated pair. Positions must lie inside the table.

struct Params {
  s: u32,
  heads: u32,
  head_dim: u32,
  x_off: u32,
  pos_off: u32,
  row_stride: u32,
  inverse: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> pos: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<vec2f>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let half = p.head_dim / 2u;
  let id = gid.x + gid.y * nwg.x * 256u;
  if (id >= p.s * p.heads * half) {
    return;
  }
  let j = id % half;
  let h = (id / half) % p.heads;
  let t = id / (half * p.heads);
  var cs = table[pos[p.pos_off + t] * half + j];
  if (p.inverse != 0u) {
    cs.y = -cs.y;
  }
  let base = p.x_off + t * p.row_stride + h * p.head_dim + j;
  let a = x[base];
  let b = x[base + half];
  x[base] = a * cs.x - b * cs.y;
  x[base + half] = b * cs.x + a * cs.y;
}
