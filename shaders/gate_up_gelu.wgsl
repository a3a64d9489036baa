// The decode-step MLP input in one dispatch: RMSNorm of the residual row, the gate and up
// projections (one stacked weight [2F, d]: gate rows then up rows) and the exact GELU gate:
//   h = x_m · r_m · nw;  out[m, f] = gelu(h · w[f]) · (h · w[F + f]).
// Requires d % 4 == 0.
//
// Bindings: out (M, F) f32 at out_off | x (M, d/4) vec4f at x_off/4 | nw (d/4) vec4<W> |
// w (2F, d/4) vec4<W>.
// Grid: (ceil(F / 4), M). A workgroup owns 4 outputs: 8 weight rows (gate and up of each), 32
// lanes per row.

struct Params {
  m: u32,
  f: u32,
  d: u32,
  x_off: u32,
  out_off: u32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> nw: array<vec4<W>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<W>>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const OUTPUTS: u32 = 4u;

var<workgroup> dots: array<f32, 8>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let m = wg.y;
  let d4 = p.d / 4u;
  let xb = p.x_off / 4u + m * d4;
  var ss = 0.0;
  for (var k = li; k < d4; k += 256u) {
    let v = x[xb + k];
    ss += dot(v, v);
  }
  let inv = inverseSqrt(group_sum(ss, li, 256u) / f32(p.d) + p.eps);

  let slot = li / LANES; // 0..7: output slot / 2, gate (even) or up (odd)
  let f = wg.x * OUTPUTS + slot / 2u;
  let lane = li % LANES;
  var acc = 0.0;
  if (f < p.f) {
    let wb = (f + (slot % 2u) * p.f) * d4;
    for (var k = lane; k < d4; k += LANES) {
      acc += dot(x[xb + k] * vec4f(nw[k]), vec4f(w[wb + k]));
    }
  }
  let total = group_sum(acc, li, LANES) * inv;
  if (lane == 0u) {
    dots[slot] = total;
  }
  workgroupBarrier();
  if (li < OUTPUTS) {
    let ff = wg.x * OUTPUTS + li;
    if (ff < p.f) {
      out[p.out_off + m * p.f + ff] = gelu_erf(dots[2u * li]) * dots[2u * li + 1u];
    }
  }
}
