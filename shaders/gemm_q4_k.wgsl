// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for many rows, with a
// q4_k weight (src/quant/FORMATS.md: GGUF Q4_K super-blocks of 256 weights, 36 words): gemm.wgsl
// with the weight tile dequantized as it is loaded into workgroup memory, w = (d·sc)·q − dmin·m.
//
// Bindings: y (M, N) f32 at y_off | x (M, K) f32 at x_off | w q4_k, row n at word
// w_off + n · 9K/64 (K % 256 == 0) | b (N) W at b_off, read only when has_bias != 0.
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

// Weight (n, k), dequantized: sub-block j = (k % 256) / 32 of its super-block has its scale and
// min (q4k_sub_scales); its level is nibble j % 2 of byte 32 (j / 2) + k % 32 of qs.
fn weight(n: u32, k: u32) -> f32 {
  let base = p.w_off + n * (p.k / 256u) * 36u + (k / 256u) * 36u;
  let j = (k % 256u) / 32u;
  let i = k % 32u;
  let s = q4k_sub_scales(w[base], vec3u(w[base + 1u], w[base + 2u], w[base + 3u]), j);
  let q = (w[base + 4u + (j / 2u) * 8u + i / 4u] >> (8u * (i % 4u) + 4u * (j % 2u))) & 15u;
  return s.x * f32(q) - s.y;
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
