// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for many rows (prefill,
// NAR passes, codec layers), for any K and offsets: gemm_vec4.wgsl (which see for the tiling and
// the row-count-independent rounding) with scalar loads, giving the same bits as it.
// w is stored [out, in] like PyTorch's Linear. f32 accumulation whatever W is.
//
// Bindings: y (M, N) f32 at y_off | x (M, K) f32 at x_off | w (N, K) W at w_off | b (N) W at
// b_off, read only when has_bias != 0.
// Tile (override WX, WY) and grid as gemm_vec4.wgsl: (ceil(N / 8 WX), ceil(M / 8 WY)).
// Out-of-range elements load as zero, so any M, N, K works.

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
@group(0) @binding(2) var<storage, read> w: array<W>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

// Threads along N and along M; each computes 8 × 8 outputs.
override WX: u32 = 8u;
override WY: u32 = 8u;
const BK: u32 = 16u;
// Row stride of the tiles, in vec4: BK / 4 plus one of padding.
const RS: u32 = 5u;
override XS_LEN: u32 = 8u * WY * RS;
override WS_LEN: u32 = 8u * WX * RS;

var<workgroup> xs: array<vec4f, XS_LEN>; // [BM][RS]
var<workgroup> ws: array<vec4<W>, WS_LEN>; // [BN][RS]

@compute @workgroup_size(WX, WY)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let bm = 8u * WY;
  let bn = 8u * WX;
  let threads = WX * WY;
  let row0 = wg.y * bm;
  let col0 = wg.x * bn;
  var acc: array<array<f32, 8>, 8>;
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var e = li; e < bm * 4u; e += threads) {
      let r = e / 4u;
      let k = k0 + 4u * (e % 4u);
      var v = vec4f(0.0);
      if (row0 + r < p.m) {
        let base = p.x_off + (row0 + r) * p.k + k;
        for (var t = 0u; t < 4u; t++) {
          if (k + t < p.k) {
            v[t] = x[base + t];
          }
        }
      }
      xs[r * RS + e % 4u] = v;
    }
    for (var e = li; e < bn * 4u; e += threads) {
      let c = e / 4u;
      let k = k0 + 4u * (e % 4u);
      var v = vec4<W>(0.0);
      if (col0 + c < p.n) {
        let base = p.w_off + (col0 + c) * p.k + k;
        for (var t = 0u; t < 4u; t++) {
          if (k + t < p.k) {
            v[t] = w[base + t];
          }
        }
      }
      ws[c * RS + e % 4u] = v;
    }
    workgroupBarrier();
    for (var q = 0u; q < BK / 4u; q++) {
      var c: array<vec4f, 8>;
      for (var j = 0u; j < 8u; j++) {
        c[j] = vec4f(ws[(lid.x + WX * j) * RS + q]);
      }
      for (var i = 0u; i < 8u; i++) {
        let a = xs[(lid.y + WY * i) * RS + q];
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
    let r = row0 + lid.y + WY * i;
    for (var j = 0u; j < 8u; j++) {
      let c = col0 + lid.x + WX * j;
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
