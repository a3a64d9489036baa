// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for many rows, with a
// q8_0 weight (src/quant/FORMATS.md §3: per 64 weights 17 words, the two f16 scales then 2 × 32
// int8): gemm.wgsl with the weight tile dequantized as it is loaded into workgroup memory.
//
// Bindings: y (M, N) f32 at y_off | x (M, K) f32 at x_off | w q8_0, row n at word
// w_off + n · 17K/64 (K % 64 == 0) | b (N) W at b_off, read only when has_bias != 0.
// Grid: (ceil(N / 64), ceil(M / 64)); tiles as in gemm.wgsl.

struct Params {
  m: u32,
  n: u32,
  k: u32,
  x_off: u32,
  y_off: u32,
  w_off: u32,
  b_off: u32,
  has_bias: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

// Weight (n, k), dequantized: its block's f16 scale times its int8.
fn weight(n: u32, k: u32) -> f32 {
  let base = p.w_off + n * (p.k / 64u) * 17u + (k / 64u) * 17u;
  let r = k % 64u;
  let q = bitcast<i32>(w[base + 1u + r / 4u] << (24u - 8u * (r % 4u))) >> 24u;
  let s = unpack2x16float(w[base]);
  return select(s.x, s.y, r >= 32u) * f32(q);
}

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> xs: array<f32, 1024>; // [TK][TILE], k-major
var<workgroup> ws: array<f32, 1024>; // [TK][TILE], k-major

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.k; k0 += TK) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      let t = e / TK;
      let kk = e % TK;
      let gk = k0 + kk;
      var xv = 0.0;
      if (row0 + t < p.m && gk < p.k) {
        xv = x[p.x_off + (row0 + t) * p.k + gk];
      }
      xs[kk * TILE + t] = xv;
      var wv = 0.0;
      if (col0 + t < p.n && gk < p.k) {
        wv = weight(col0 + t, gk);
      }
      ws[kk * TILE + t] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>;
      var c: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xs[kk * TILE + lid.y + 16u * i];
        c[i] = ws[kk * TILE + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] += a[i] * c[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x + 16u * j;
      if (r < p.m && c < p.n) {
        var v = acc[i][j];
        if (p.has_bias != 0u) {
          v += f32(b[p.b_off + c]);
        }
        let o = p.y_off + r * p.n + c;
        if (p.accumulate != 0u) {
          v += y[o];
        }
        y[o] = v;
      }
    }
  }
}
