// 1-D convolution as an implicit GEMM over time-major activations:
//   y[r, co] (+)= b[co] + Σ_{tap, ci} w[co, tap, ci] · act(x[src(r · stride + tap · dilation − pad_left), ci])
// where the padded input position is resolved by `src` (zero or PyTorch reflect padding, including
// EnCodec's short-input rule) and act is ELU when flags bit 0 is set. The same kernel computes
// transposed convolutions split by output phase (see src/ops/conv1d.ts): then dilation is −1, the
// grid's z index is the phase, and output row r goes to r · out_stride + out_start + z.
//
// Bindings: y (out_rows, N) f32 at y_off | x (in_len, cin) f32 at x_off |
//   w (z, N, taps, cin) W at w_off + z · w_phase | b (N) W at b_off (read when flags bit 2).
// Flags: bit 0 ELU on the input, bit 1 accumulate into y, bit 2 bias.
// Padding: reflect_len = 0 → zero padding outside [0, in_len); otherwise reflection about the
//   ends of a signal of reflect_len samples whose samples at or beyond in_len are zero (EnCodec's
//   pad1d: a signal shorter than its padding is first extended with zeros).
// Schedules (override NT):
//   NT = 16, 32, 64: grid (ceil(N / NT), ceil(M / 64), phases). 256 threads share a 64 × NT
//     output tile; thread (tx, ty) owns rows ty + 16i and columns tx + 16j. K = taps · cin is
//     walked 16 at a time, in the same order for every row, so a row's value does not depend on
//     which tile computed it.
//   NT = 0, for N ≤ 4 (EnCodec's last decoder conv has one output channel, a 64 × 16 tile would
//     leave 15/16 of the threads idle): grid (ceil(M / 256), ·, phases), a 2-D grid counting as
//     consecutive rows of workgroups; one thread per output row computes every channel, walking
//     taps then input channels.

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

// Output channels per workgroup: 64, 32 or 16; 0 for the row-per-thread schedule (N ≤ 4).
override NT: u32 = 64u;
const MT: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> xs: array<f32, 1024>; // [TK][MT]
var<workgroup> ws: array<f32, 1024>; // [TK][NT]

// The input row a padded position reads, or -1 for a zero.
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

fn elu(v: f32) -> f32 {
  return select(exp(min(v, 0.0)) - 1.0, v, v > 0.0);
}

// Adds bias and the previous value as the flags say, and stores output (r, c) of phase z.
fn store(r: u32, c: u32, z: u32, sum: f32) {
  let out_row = i32(r) * i32(p.out_stride) + p.out_start + i32(z);
  if (r >= p.m || c >= p.n || out_row < 0 || out_row >= i32(p.out_rows)) {
    return;
  }
  var v = sum;
  if ((p.flags & 4u) != 0u) {
    v += f32(b[p.b_off + c]);
  }
  let o = p.y_off + u32(out_row) * p.n + c;
  if ((p.flags & 2u) != 0u) {
    v = y[o] + v;
  }
  y[o] = v;
}

// One output row, every channel (N ≤ 4).
fn row_per_thread(r: u32, z: u32) {
  let kdim = p.taps * p.cin;
  let w_base = p.w_off + z * p.w_phase;
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
        v = elu(v);
      }
      for (var c = 0u; c < p.n; c++) {
        acc[c] += f32(w[wb + c * kdim + ci]) * v;
      }
    }
  }
  for (var c = 0u; c < p.n; c++) {
    store(r, c, z, acc[c]);
  }
}

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  if (NT == 0u) {
    row_per_thread((wg.x + wg.y * nwg.x) * 256u + li, wg.z);
    return;
  }
  let kdim = p.taps * p.cin;
  let row0 = wg.y * MT;
  let col0 = wg.x * NT;
  let w_base = p.w_off + wg.z * p.w_phase;
  let rn = NT / 16u;
  let act = (p.flags & 1u) != 0u;
  var acc: array<array<f32, 4>, 4>;
  // 256 threads load a 16-wide K slice: every load of a thread has the same k, so the tap and
  // input channel are derived once per K step.
  let lk = li % TK;
  let lt = li / TK;
  for (var k0 = 0u; k0 < kdim; k0 += TK) {
    let gk = k0 + lk;
    let tap = gk / p.cin;
    let ci = gk - tap * p.cin;
    let shift = i32(tap) * p.dilation - p.pad_left;
    for (var i = 0u; i < 4u; i++) {
      let t = lt + 16u * i;
      var v = 0.0;
      if (row0 + t < p.m && gk < kdim) {
        let src = source_row(i32(row0 + t) * i32(p.stride) + shift);
        if (src >= 0) {
          v = x[p.x_off + u32(src) * p.cin + ci];
          if (act) {
            v = elu(v);
          }
        }
      }
      xs[lk * MT + t] = v;
      if (t < NT) {
        var wv = 0.0;
        if (col0 + t < p.n && gk < kdim) {
          wv = f32(w[w_base + (col0 + t) * kdim + gk]);
        }
        ws[lk * NT + t] = wv;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>;
      var c: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xs[kk * MT + lid.y + 16u * i];
      }
      for (var j = 0u; j < rn; j++) {
        c[j] = ws[kk * NT + lid.x + 16u * j];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < rn; j++) {
          acc[i][j] += a[i] * c[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < rn; j++) {
      store(row0 + lid.y + 16u * i, col0 + lid.x + 16u * j, wg.z, acc[i][j]);
    }
  }
}
