requires packed_4x8_integer_dot_product;

// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for many rows, with a
// q8_0 weight, in integer arithmetic: gemm_q8_0 on a device whose WGSL has
// packed_4x8_integer_dot_product. Every 32-block of x is quantized in the tile as the CPU backend
// quantizes it (quantize_block, src/quant/FORMATS.md §5); a block adds f32(Σ q · xq) · (dw · dx),
// the integer sum from eight dot4I8Packed of the weight's int8 words as stored.
//
// Bindings, parameters and grid as gemm_q8_0.wgsl (x at a 4-aligned offset). K is walked 64 at a
// time (a pair of blocks): invocations 0..127 quantize the tile's 64 rows × 2 blocks of x, one
// block each, while 128..255 load its 64 weight rows × 2 blocks; then each invocation adds the
// two blocks to its 4 × 4 outputs (rows ty + 16i, columns tx + 16j, as gemm.wgsl).

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

const TILE: u32 = 64u;

var<workgroup> xs: array<u32, 1024>; // [2 blocks × 8 words][TILE rows], word-major
var<workgroup> ws: array<u32, 1024>; // [2 blocks × 8 words][TILE columns]
var<workgroup> xd: array<f32, 128>; // [2 blocks][TILE rows]: dx
var<workgroup> wd: array<f32, 128>; // [2 blocks][TILE columns]: dw

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  // The block this invocation loads: row or column t of the tile, block h of the pair.
  let t = li % TILE;
  let h = (li / TILE) % 2u;
  var acc: array<array<f32, 4>, 4>;
  // The vars declared in the loop are zeroed explicitly: wgpu 29 (naga) zeroes a `var` without
  // initializer once, not each time its declaration runs.
  for (var k0 = 0u; k0 < p.k; k0 += 64u) {
    if (li < 128u) {
      var v = array<vec4f, 8>();
      if (row0 + t < p.m) {
        let at = p.x_off / 4u + (row0 + t) * (p.k / 4u) + (k0 + 32u * h) / 4u;
        for (var i = 0u; i < 8u; i++) {
          v[i] = x[at + i];
        }
      }
      let q = quantize_block(v);
      for (var i = 0u; i < 8u; i++) {
        xs[(8u * h + i) * TILE + t] = q.words[i];
      }
      xd[h * TILE + t] = q.dx;
    } else {
      var dw = 0.0;
      var words = array<u32, 8>();
      if (col0 + t < p.n) {
        let base = p.w_off + (col0 + t) * (p.k / 64u) * 17u + (k0 / 64u) * 17u;
        let scales = unpack2x16float(w[base]);
        dw = select(scales.x, scales.y, h == 1u);
        for (var i = 0u; i < 8u; i++) {
          words[i] = w[base + 1u + 8u * h + i];
        }
      }
      for (var i = 0u; i < 8u; i++) {
        ws[(8u * h + i) * TILE + t] = words[i];
      }
      wd[h * TILE + t] = dw;
    }
    workgroupBarrier();
    for (var hh = 0u; hh < 2u; hh++) {
      var isum = array<array<i32, 4>, 4>();
      for (var i = 0u; i < 8u; i++) {
        let at = (8u * hh + i) * TILE;
        var a: array<u32, 4>;
        var c: array<u32, 4>;
        for (var j = 0u; j < 4u; j++) {
          a[j] = xs[at + lid.y + 16u * j];
          c[j] = ws[at + lid.x + 16u * j];
        }
        for (var r = 0u; r < 4u; r++) {
          for (var j = 0u; j < 4u; j++) {
            isum[r][j] += dot4I8Packed(a[r], c[j]);
          }
        }
      }
      for (var r = 0u; r < 4u; r++) {
        let dx = xd[hh * TILE + lid.y + 16u * r];
        for (var j = 0u; j < 4u; j++) {
          acc[r][j] += f32(isum[r][j]) * (wd[hh * TILE + lid.x + 16u * j] * dx);
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
