// Vocos ISTFTHead, from the linear head's output to the complex spectrum, in place:
// row t holds [log-magnitude of bins 0..nb−1 | phase of bins 0..nb−1] and becomes
// [Re S | Im S] with S = min(exp(log-magnitude), 100) · (cos φ + i sin φ).
//
// The phase is an unbounded linear output (±17 rad and more) and WGSL only bounds sin/cos error
// (2^-11) on [−π, π], so sin and cos are computed here: Cody–Waite reduction by π/2 in three
// parts, then the minimax polynomials of Cephes' sinf/cosf on [−π/4, π/4] (about 1 ulp).
//
// Bindings: x (T, 2·nb) f32 at x_off, overwritten.
// Grid: (ceil(T · nb / 256), ·): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  frames: u32,
  nb: u32,
  x_off: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const TWO_OVER_PI: f32 = 0.63661977236758134;
const PIO2_1: f32 = 1.5703125;
const PIO2_2: f32 = 4.837512969970703125e-4;
const PIO2_3: f32 = 7.549789954891882e-8;

// (sin v, cos v).
fn sincos(v: f32) -> vec2f {
  let k = round(v * TWO_OVER_PI);
  let r = ((v - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  let quadrant = i32(k) & 3;
  switch (quadrant) {
    case 0: {
      return vec2f(s, c);
    }
    case 1: {
      return vec2f(c, -s);
    }
    case 2: {
      return vec2f(-s, -c);
    }
    default: {
      return vec2f(-c, s);
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.frames * p.nb) {
    return;
  }
  let t = i / p.nb;
  let k = i % p.nb;
  let at = p.x_off + t * 2u * p.nb + k;
  // exp is clamped before it can overflow; beyond ln 100 the clip gives 100 anyway.
  let mag = min(exp(min(x[at], 10.0)), 100.0);
  let sc = sincos(x[at + p.nb]);
  x[at] = mag * sc.y;
  x[at + p.nb] = mag * sc.x;
}
