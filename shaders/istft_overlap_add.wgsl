// Vocos ISTFT ("same" padding), after the per-frame inverse DFT: overlap-add of windowed frames
// at hop `hop`, trimmed by `pad` on both sides, divided by the exact window envelope
// env[u] = Σ_f w²[u − f·hop] over the frames covering padded position u (0.75…1.5 near the ends,
// 1.5 inside for n_fft = 4·hop).
//
// Bindings: out (count) f32 at out_off | frames (nf, n_fft) f32 at frames_off, holding frames
//   f0 .. f0 + nf − 1 of the total `total` (windowed already) | window (n_fft) f32.
// Output sample i is global sample m0 + i of the trimmed signal.
// Grid: (ceil(count / 256), ·): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  count: u32,
  n_fft: u32,
  hop: u32,
  pad: u32,
  total: u32,
  f0: u32,
  m0: u32,
  frames_off: u32,
  out_off: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> frames: array<f32>;
@group(0) @binding(2) var<storage, read> window: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.count) {
    return;
  }
  let u = p.m0 + i + p.pad;
  // Frames f with f·hop ≤ u < f·hop + n_fft, ascending.
  var first = 0u;
  if (u + 1u > p.n_fft) {
    first = (u + 1u - p.n_fft + p.hop - 1u) / p.hop;
  }
  let last = min(u / p.hop, p.total - 1u);
  var sum = 0.0;
  var env = 0.0;
  for (var f = first; f <= last; f++) {
    let n = u - f * p.hop;
    let wv = window[n];
    env += wv * wv;
    sum += frames[p.frames_off + (f - p.f0) * p.n_fft + n];
  }
  out[p.out_off + i] = sum / env;
}
