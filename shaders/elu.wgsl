// ELU (alpha 1), out of place: y[i] = x[i] if x[i] > 0, else exp(x[i]) − 1.
//
// Bindings: y (n) f32 at y_off | x (n) f32 at x_off.
// Grid: (ceil(n / 256), ·): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  n: u32,
  y_off: u32,
  x_off: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let v = x[p.x_off + i];
    y[p.y_off + i] = select(exp(min(v, 0.0)) - 1.0, v, v > 0.0);
  }
}
