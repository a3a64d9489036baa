// One AdamW step (torch.optim.AdamW) over a flat f32 parameter buffer, elementwise:
//   g = grad · scale[0]                       (the clipping factor, read on the device)
//   p = p · decay                             (decay = 1 − lr · weight_decay, decoupled)
//   m = β1 · m + (1 − β1) · g
//   v = β2 · v + (1 − β2) · g · g
//   p = p − step_size · m / (√v / √bc2 + eps)  (step_size = lr / bc1, bc_i = 1 − β_i^step)
// The step's scalars are computed on the host in float64 and passed as f32, as PyTorch passes
// its Python floats to the tensor ops.
//
// Bindings: p, g, m, v (n) f32 at p_off, g_off, m_off, v_off | scale f32 at scale_off.
// Grid: grid1d(ceil(n / 256)).

struct Params {
  n: u32,
  p_off: u32,
  g_off: u32,
  m_off: u32,
  v_off: u32,
  scale_off: u32,
  decay: f32,
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  step_size: f32,
  bc2_sqrt: f32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m1: array<f32>;
@group(0) @binding(3) var<storage, read_write> m2: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) {
    return;
  }
  let g = grad[p.g_off + i] * scale[p.scale_off];
  let m = p.beta1 * m1[p.m_off + i] + p.one_minus_beta1 * g;
  let v = p.beta2 * m2[p.v_off + i] + p.one_minus_beta2 * g * g;
  m1[p.m_off + i] = m;
  m2[p.v_off + i] = v;
  let denom = sqrt(v) / p.bc2_sqrt + p.eps;
  param[p.p_off + i] = param[p.p_off + i] * p.decay - p.step_size * (m / denom);
}
