// The gradient of the gated MLP's activation m = gelu(g) · u (shaders/gelu_mul.wgsl), GELU in its
// exact erf form, given dm = ∂L/∂m and the forward's g and u:
//   dg = dm · u · gelu'(g),  du = dm · gelu(g),  gelu'(z) = Φ(z) + z φ(z).
// A thread reads its element of dm, g and u before writing dg and du, so an output may be the
// same elements as an input (dg over dm, du over u). Every binding is read_write for that: a
// buffer bound both read-only and writable in one dispatch is a WebGPU usage conflict.
//
// Bindings: dg (n) f32 at dg_off | du (n) f32 at du_off | dm (n) f32 at dm_off |
// g (n) f32 at g_off | u (n) f32 at u_off.
// Grid: (ceil(n / 256), ·), a 2-D grid counting as consecutive rows of workgroups.

struct Params {
  n: u32,
  dg_off: u32,
  du_off: u32,
  dm_off: u32,
  g_off: u32,
  u_off: u32,
}

@group(0) @binding(0) var<storage, read_write> dg: array<f32>;
@group(0) @binding(1) var<storage, read_write> du: array<f32>;
@group(0) @binding(2) var<storage, read_write> dm: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> u: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

// 1 / sqrt(2π).
const INV_SQRT_2PI: f32 = 0.39894228040143268;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let d = dm[p.dm_off + i];
    let z = g[p.g_off + i];
    let uu = u[p.u_off + i];
    let cdf = 0.5 * erfc_f32(-z * 0.70710678118654752);
    let pdf = exp(-0.5 * z * z) * INV_SQRT_2PI;
    dg[p.dg_off + i] = d * uu * (cdf + z * pdf);
    du[p.du_off + i] = d * z * cdf;
  }
}
