// The gated MLP's activation, in place: g[i] = gelu(g[i]) · u[i], GELU in its exact erf form.
//
// Bindings: g (n) f32 at g_off, overwritten | u (n) f32 at u_off.
// Grid: (ceil(n / 256)).

struct Params {
  n: u32,
  g_off: u32,
  u_off: u32,
}

@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    g[p.g_off + i] = gelu_erf(g[p.g_off + i]) * u[p.u_off + i];
  }
}
