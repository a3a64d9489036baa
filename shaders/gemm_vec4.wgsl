// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for many rows (prefill,
// NAR passes, codec layers), with 4-wide loads: K % 4 == 0 and x, w at 4-aligned offsets.
// gemm.wgsl is the same kernel with scalar loads for any K and offsets, and gives the same bits.
// w is stored [out, in] like PyTorch's Linear. f32 accumulation whatever W is.
//
// Bindings: y (M, N) f32 at y_off | x (M, K/4) vec4f at x_off/4 | w (N, K/4) vec4<W> at w_off/4 |
// b (N) W at b_off, read only when has_bias != 0.
// Tile (override WX, WY): a workgroup of WX × WY threads computes BM × BN = 8 WY rows × 8 WX
// columns; thread (tx, ty) holds the 8 × 8 outputs of rows ty + WY i and columns tx + WX j in
// registers. Workgroup memory is 80 (BM + BN) bytes for f32 weights, 80 BM + 40 BN for f16, at
// most 16 KiB: WX = WY = 8 (the default, 10 KiB) or one of them 16.
// Grid: (ceil(N / BN), ceil(M / BM)).
//
// K is walked BK = 16 at a time. Each step copies the BM × BK slice of x and the BN × BK slice of
// w into workgroup memory as they lie in memory (a row of BK as 4 vec4, w still W: an f16 tile
// for f16 weights), each row padded to RS = 5 vec4 so that the 8 rows a group of 8 threads reads
// at once fall on distinct banks. Then per 4 k a thread reads its 8 weight vec4 once and, row by
// row, one activation vec4 (the same for the WX threads of a row): 256 FMAs for 16 vec4 reads.
//
// Row-count-independent rounding: every output's sum runs over k = 0, 1, ..., K - 1 in order
// (then zeros up to the next multiple of BK, the same for every row), by the same instructions
// whatever M is and wherever the row falls in its tile, so rows computed in chunks give the same
// bits as rows computed together.

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
@group(0) @binding(2) var<storage, read> w: array<vec4<W>>;
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
  let kq = p.k / 4u;
  var acc: array<array<f32, 8>, 8>;
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var e = li; e < bm * 4u; e += threads) {
      let r = e / 4u;
      let q = k0 / 4u + e % 4u;
      var v = vec4f(0.0);
      if (row0 + r < p.m && q < kq) {
        v = x[p.x_off / 4u + (row0 + r) * kq + q];
      }
      xs[r * RS + e % 4u] = v;
    }
    for (var e = li; e < bn * 4u; e += threads) {
      let c = e / 4u;
      let q = k0 / 4u + e % 4u;
      var v = vec4<W>(0.0);
      if (col0 + c < p.n && q < kq) {
        v = w[p.w_off / 4u + (col0 + c) * kq + q];
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
