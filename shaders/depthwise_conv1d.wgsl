// Depthwise 1-D convolution with zero padding over time-major activations (Vocos's ConvNeXt
// dwconv, groups = channels): y[t, c] = b[c] + Σ_j w[c, j] · x[t + j − pad, c].
//
// Bindings: y (L, C) f32 at y_off | x (L, C) f32 at x_off | w (C, taps) W | b (C) W.
// Grid: (ceil(L · C / 256), ·): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  len: u32,
  ch: u32,
  taps: u32,
  pad: u32,
  x_off: u32,
  y_off: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<W>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.len * p.ch) {
    return;
  }
  let t = i / p.ch;
  let c = i % p.ch;
  var acc = 0.0;
  for (var j = 0u; j < p.taps; j++) {
    let pos = i32(t + j) - i32(p.pad);
    if (pos >= 0 && pos < i32(p.len)) {
      acc += f32(w[c * p.taps + j]) * x[p.x_off + u32(pos) * p.ch + c];
    }
  }
  y[p.y_off + i] = acc + f32(b[c]);
}
