// Classifier-free guidance, in place over the conditional logits:
// c[i] = (u[i] + (c[i] − u[i]) · strength) · stats[4] (the rescale factor from cfg_stats).
//
// Bindings: c (n) f32 at c_off, overwritten | u (n) f32 at u_off | stats (8) f32.
// Grid: (ceil(n / 256), ·), a 2-D grid counting as consecutive rows of workgroups.

struct Params {
  n: u32,
  c_off: u32,
  u_off: u32,
  strength: f32,
}

@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let un = u[p.u_off + i];
    c[p.c_off + i] = (un + (c[p.c_off + i] - un) * p.strength) * stats[4];
  }
}
