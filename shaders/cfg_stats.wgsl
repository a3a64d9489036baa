// Classifier-free guidance statistics (vall_e/samplers.py: cfg_logits), for the whole slice at
// once: z = u + (c − u) · w over n = rows · cols elements; std is torch's unbiased std over ALL
// elements (the original passes an empty dim tuple). Writes
// stats = [mean(c), std(c), mean(z), std(z), factor], factor = rescale · std(c) / std(z) + keep
// (keep = 1 − rescale) when rescale > 0, else 1.
//
// Two-stage reductions over `groups` workgroups, in three dispatches of this kernel (`phase`):
//   0. (groups) workgroup g sums c and z over its chunk [g · chunk, (g + 1) · chunk) into
//      stats[8 + g], stats[8 + groups + g];
//   1. (groups) every workgroup folds those sums into the means (group 0 stores them), then sums
//      the squared deviations over its chunk into stats[8 + 2 groups + g], stats[8 + 3 groups + g];
//   2. (1) one workgroup folds those into the stds and the factor.
// Within a chunk, lane j sums elements j, j + 256, … with compensation and the lanes fold as a
// tree; partial sums fold likewise (groups ≤ 256, missing lanes 0), so the bits do not depend on
// anything but n and the chunk.
//
// Bindings: stats (8 + 4 · groups) f32 | c (n) f32 at c_off | u (n) f32 at u_off.
// Grid: (groups) for phases 0 and 1, (1) for phase 2.

struct Params {
  n: u32,
  c_off: u32,
  u_off: u32,
  strength: f32,
  rescale: f32,
  keep: f32,
  phase: u32,
  groups: u32,
  chunk: u32,
}

@group(0) @binding(0) var<storage, read_write> stats: array<f32>;
@group(0) @binding(1) var<storage, read> c: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;
const PARTIALS: u32 = 8u;

var<workgroup> red_c: array<f32, WG>;
var<workgroup> red_z: array<f32, WG>;

fn guided(i: u32) -> f32 {
  let un = u[p.u_off + i];
  return un + (c[p.c_off + i] - un) * p.strength;
}

// Folds the lanes' values into red_c[0], red_z[0] (every invocation calls it).
fn reduce(li: u32, vc: f32, vz: f32) {
  red_c[li] = vc;
  red_z[li] = vz;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      red_c[li] += red_c[li + s];
      red_z[li] += red_z[li + s];
    }
    workgroupBarrier();
  }
}

// Folds the partial sums stats[first + g], stats[first + groups + g] over the groups.
fn fold_partials(li: u32, first: u32) {
  var vc = 0.0;
  var vz = 0.0;
  if (li < p.groups) {
    vc = stats[first + li];
    vz = stats[first + p.groups + li];
  }
  reduce(li, vc, vz);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let nf = f32(p.n);
  if (p.phase == 2u) {
    fold_partials(li, PARTIALS + 2u * p.groups);
    if (li == 0u) {
      let std_c = sqrt(red_c[0] / f32(p.n - 1u));
      let std_z = sqrt(red_z[0] / f32(p.n - 1u));
      var factor = 1.0;
      if (p.rescale > 0.0) {
        factor = p.rescale * (std_c / std_z) + p.keep;
      }
      stats[1] = std_c;
      stats[3] = std_z;
      stats[4] = factor;
    }
    return;
  }
  var mean_c = 0.0;
  var mean_z = 0.0;
  if (p.phase == 1u) {
    fold_partials(li, PARTIALS);
    mean_c = red_c[0] / nf;
    mean_z = red_z[0] / nf;
    workgroupBarrier();
  }
  let first = wg.x * p.chunk;
  let end = min(p.n, first + p.chunk);
  var sc = vec2f(0.0);
  var sz = vec2f(0.0);
  for (var i = first + li; i < end; i += WG) {
    var vc = c[p.c_off + i];
    var vz = guided(i);
    if (p.phase == 1u) {
      vc = (vc - mean_c) * (vc - mean_c);
      vz = (vz - mean_z) * (vz - mean_z);
    }
    sc = kahan_add(sc, vc);
    sz = kahan_add(sz, vz);
  }
  reduce(li, sc.x, sz.x);
  if (li == 0u) {
    let out = PARTIALS + 2u * p.phase * p.groups + wg.x;
    stats[out] = red_c[0];
    stats[out + p.groups] = red_z[0];
    if (p.phase == 1u && wg.x == 0u) {
      stats[0] = mean_c;
      stats[2] = mean_z;
    }
  }
}
