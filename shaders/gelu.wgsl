// GELU in place, in its exact erf form (PyTorch's nn.GELU() default): x[i] = gelu_erf(x[i]).
//
// Bindings: x (n) f32 at x_off, overwritten.
// Grid: (ceil(n / 256), ·): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  n: u32,
  x_off: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    x[p.x_off + i] = gelu_erf(x[p.x_off + i]);
  }
}
