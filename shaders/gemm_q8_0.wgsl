// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for many rows, with a
// q8_0 weight (src/quant/FORMATS.md §3: per 64 weights 17 words, the two f16 scales then 2 × 32
// int8): gemm_vec4.wgsl with the weight tile dequantized as it is loaded into workgroup memory.
//
// Bindings: y (M, N) f32 at y_off | x (M, K/4) vec4f at x_off/4 (x_off % 4 == 0) | w q8_0, row n
// at word w_off + n · 17K/64 (K % 64 == 0) | b (N) W at b_off, read only when has_bias != 0.
// Tile: 64 × 64, 8 × 8 threads of 8 × 8 outputs each, as gemm_vec4.wgsl's default (fixed: the
// grid, (ceil(N / 64), ceil(M / 64)), is also gemm_q8_0_dp4a's).

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
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

// Weights (n, k..k + 3), k % 4 == 0, dequantized: their block's f16 scale times their int8 (one
// word, i8x4).
fn weights(n: u32, k: u32) -> vec4f {
  let base = p.w_off + n * (p.k / 64u) * 17u + (k / 64u) * 17u;
  let r = k % 64u;
  let s = unpack2x16float(w[base]);
  return select(s.x, s.y, r >= 32u) * i8x4(w[base + 1u + r / 4u]);
}

const TILE: u32 = 64u;
const BK: u32 = 16u;
// Row stride of the tiles, in vec4: BK / 4 plus one of padding.
const RS: u32 = 5u;

var<workgroup> xs: array<vec4f, 320>; // [TILE][RS]
var<workgroup> ws: array<vec4f, 320>; // [TILE][RS], dequantized

@compute @workgroup_size(8, 8)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  let kq = p.k / 4u;
  var acc: array<array<f32, 8>, 8>;
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var e = li; e < TILE * 4u; e += 64u) {
      let r = e / 4u;
      let q = k0 / 4u + e % 4u;
      var v = vec4f(0.0);
      if (row0 + r < p.m) {
        v = x[p.x_off / 4u + (row0 + r) * kq + q];
      }
      xs[r * RS + e % 4u] = v;
    }
    for (var e = li; e < TILE * 4u; e += 64u) {
      let c = e / 4u;
      var v = vec4f(0.0);
      if (col0 + c < p.n) {
        v = weights(col0 + c, k0 + 4u * (e % 4u));
      }
      ws[c * RS + e % 4u] = v;
    }
    workgroupBarrier();
    for (var q = 0u; q < BK / 4u; q++) {
      var c: array<vec4f, 8>;
      for (var j = 0u; j < 8u; j++) {
        c[j] = ws[(lid.x + 8u * j) * RS + q];
      }
      for (var i = 0u; i < 8u; i++) {
        let a = xs[(lid.y + 8u * i) * RS + q];
        for (var j = 0u; j < 8u; j++) {
          var s = acc[i][j];
          s += a.x * c[j].x;
          s += a.y * c[j].y;
          s += a.z * c[j].z;
          s += a.w * c[j].w;
          acc[i][j] = s;
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let r = row0 + lid.y + 8u * i;
    for (var j = 0u; j < 8u; j++) {
      let c = col0 + lid.x + 8u * j;
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
