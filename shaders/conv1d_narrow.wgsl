// conv1d.wgsl's convolution for layers with at most 4 output channels (EnCodec's last decoder
// convolution has one), where a 64 × 16 output tile would leave most threads idle: one thread
// per output row computes every channel, walking taps then input channels. Same bindings, params,
// padding rules, flags and phase handling as conv1d.wgsl.
//
// Grid: (ceil(M / 256), ·, phases): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  m: u32,
  n: u32,
  cin: u32,
  taps: u32,
  in_len: u32,
  stride: u32,
  dilation: i32,
  pad_left: i32,
  reflect_len: u32,
  x_off: u32,
  y_off: u32,
  w_off: u32,
  b_off: u32,
  w_phase: u32,
  out_stride: u32,
  out_start: i32,
  out_rows: u32,
  flags: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<W>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

fn source_row(pos: i32) -> i32 {
  let len = i32(p.in_len);
  var j = pos;
  if (p.reflect_len != 0u) {
    let le = i32(p.reflect_len);
    if (j < 0) {
      j = -j;
    } else if (j >= le) {
      j = 2 * (le - 1) - j;
    }
  }
  return select(-1, j, j >= 0 && j < len);
}

@compute @workgroup_size(256)
fn main(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(workgroup_id) wg: vec3u,
) {
  let r = gid.x + gid.y * nwg.x * 256u;
  let out_row = i32(r) * i32(p.out_stride) + p.out_start + i32(wg.z);
  if (r >= p.m || out_row < 0 || out_row >= i32(p.out_rows)) {
    return;
  }
  let kdim = p.taps * p.cin;
  let w_base = p.w_off + wg.z * p.w_phase;
  var acc = vec4f(0.0);
  for (var tap = 0u; tap < p.taps; tap++) {
    let src = source_row(i32(r) * i32(p.stride) + i32(tap) * p.dilation - p.pad_left);
    if (src < 0) {
      continue;
    }
    let xb = p.x_off + u32(src) * p.cin;
    let wb = w_base + tap * p.cin;
    for (var ci = 0u; ci < p.cin; ci++) {
      var v = x[xb + ci];
      if ((p.flags & 1u) != 0u) {
        v = select(exp(min(v, 0.0)) - 1.0, v, v > 0.0);
      }
      for (var c = 0u; c < p.n; c++) {
        acc[c] += f32(w[wb + c * kdim + ci]) * v;
      }
    }
  }
  for (var c = 0u; c < p.n; c++) {
    var v = acc[c];
    if ((p.flags & 4u) != 0u) {
      v += f32(b[p.b_off + c]);
    }
    let o = p.y_off + u32(out_row) * p.n + c;
    if ((p.flags & 2u) != 0u) {
      v = y[o] + v;
    }
    y[o] = v;
  }
}
