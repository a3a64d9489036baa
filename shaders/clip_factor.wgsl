// scale = min(1, max_norm / (sqrt(sumsq) + 1e-6)): torch.nn.utils.clip_grad_norm_'s factor from
// the sum of squares of every gradient, left on the device for adamw's gradient scale.
//
// Bindings: scale f32 at scale_off | sumsq f32 at sumsq_off.
// Grid: (1).

struct Params {
  scale_off: u32,
  sumsq_off: u32,
  max_norm: f32,
}

@group(0) @binding(0) var<storage, read_write> scale: array<f32>;
@group(0) @binding(1) var<storage, read> sumsq: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(1)
fn main() {
  scale[p.scale_off] = min(1.0, p.max_norm / (sqrt(sumsq[p.sumsq_off]) + 1e-6));
}
