// c[i, j] (+)= alpha · Σ_k op(a)[i, k] · op(b)[k, j]: the general GEMM of training (LoRA factors
// and their gradients, and the input gradient of a linear layer through its frozen weight).
// op(a) (M, K) is a (M, K), or aᵀ with a stored (K, M) (trans_a); op(b) (K, N) is b (K, N), or bᵀ
// with b stored (N, K) (trans_b). a and c are f32; b is f32, f16, or a q8_0 / q4_k weight
// (src/quant/FORMATS.md §3: a weight (K, N) whose rows are the reduction index, never transposed),
// all read as words so that one kernel serves every type.
//
// Bindings: c (M, N) f32 at c_off | a f32 at a_off | b words, at element b_off (f32, f16) or word
// b_off (q8_0, q4_k: row r at word b_off + r · (words per row)).
// b_type: 0 f32, 1 f16, 2 q8_0 (N % 64 == 0), 3 q4_k (N % 256 == 0).
// Tile: gemm_vec4.wgsl's default: 8 × 8 threads of 8 × 8 outputs, BM = BN = 64, BK = 16, the
// tiles padded to RS = 5 vec4 a row. Operands are loaded along the direction they are contiguous
// in memory (a: element by element; b: 4 columns of a row at a time, or 4 k of a column of bᵀ),
// and b is converted to f32 (dequantized) as it goes into the tile.
// Grid: (ceil(N / 64), ceil(M / 64)).
//
// Row-count-independent rounding: every output's sum runs over k = 0, 1, ..., K − 1 in order (then
// zeros up to the next multiple of BK), by the same instructions whatever M is, then is scaled by
// alpha and added to c: rows computed in chunks give the same bits as rows computed together.

struct Params {
  m: u32,
  n: u32,
  k: u32,
  a_off: u32,
  b_off: u32,
  c_off: u32,
  trans_a: u32,
  trans_b: u32,
  b_type: u32,
  alpha: f32,
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

const T: u32 = 64u;
const BK: u32 = 16u;
const RS: u32 = 5u;

var<workgroup> at: array<vec4f, 320>; // [BM][RS]: row i, k along the vec4s
var<workgroup> bt: array<vec4f, 320>; // [BN][RS]: column j, k along the vec4s

// Float element i of b (f32 or f16 words).
fn b_float(i: u32) -> f32 {
  if (p.b_type == 0u) {
    return bitcast<f32>(b[i]);
  }
  let h = unpack2x16float(b[i / 2u]);
  return select(h.x, h.y, (i & 1u) == 1u);
}

// op(b)[r, j .. j + 3] of an untransposed b (j % 4 == 0, r < K), zero past N.
fn b_quad(r: u32, j: u32) -> vec4f {
  if (p.b_type == 2u) {
    let base = p.b_off + r * (p.n / 64u) * 17u + (j / 64u) * 17u;
    let s = unpack2x16float(b[base]);
    return select(s.x, s.y, j % 64u >= 32u) * i8x4(b[base + 1u + (j % 64u) / 4u]);
  }
  if (p.b_type == 3u) {
    let base = p.b_off + r * (p.n / 256u) * 36u + (j / 256u) * 36u;
    let sub = (j % 256u) / 32u;
    let s = q4k_sub_scales(b[base], vec3u(b[base + 1u], b[base + 2u], b[base + 3u]), sub);
    let word = b[base + 4u + (sub / 2u) * 8u + (j % 32u) / 4u] >> (4u * (sub % 2u));
    let q = (vec4u(word) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(15u);
    return s.x * vec4f(q) - s.y;
  }
  var v = vec4f(0.0);
  for (var t = 0u; t < 4u; t++) {
    if (j + t < p.n) {
      v[t] = b_float(p.b_off + r * p.n + j + t);
    }
  }
  return v;
}

@compute @workgroup_size(8, 8)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let row0 = wg.y * T;
  let col0 = wg.x * T;
  var acc: array<array<f32, 8>, 8>;
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var e = li; e < T * BK; e += 64u) {
      // Consecutive invocations along a's contiguous direction: k, or the rows when transposed.
      var i = e / BK;
      var kk = e % BK;
      if (p.trans_a != 0u) {
        i = e % T;
        kk = e / T;
      }
      var v = 0.0;
      if (row0 + i < p.m && k0 + kk < p.k) {
        v = a[p.a_off + select((row0 + i) * p.k + k0 + kk, (k0 + kk) * p.m + row0 + i, p.trans_a != 0u)];
      }
      at[i * RS + kk / 4u][kk % 4u] = v;
    }
    if (p.trans_b != 0u) {
      // bᵀ (float b): 4 consecutive k of a column are contiguous in b, one vec4 of the tile.
      for (var e = li; e < T * 4u; e += 64u) {
        let j = e / 4u;
        let kk = k0 + 4u * (e % 4u);
        var v = vec4f(0.0);
        for (var t = 0u; t < 4u; t++) {
          if (col0 + j < p.n && kk + t < p.k) {
            v[t] = b_float(p.b_off + (col0 + j) * p.k + kk + t);
          }
        }
        bt[j * RS + e % 4u] = v;
      }
    } else {
      for (var e = li; e < T * BK / 4u; e += 64u) {
        let kk = e / (T / 4u);
        let j = 4u * (e % (T / 4u));
        var v = vec4f(0.0);
        if (k0 + kk < p.k && col0 + j < p.n) {
          v = b_quad(k0 + kk, col0 + j);
        }
        for (var t = 0u; t < 4u; t++) {
          bt[(j + t) * RS + kk / 4u][kk % 4u] = v[t];
        }
      }
    }
    workgroupBarrier();
    for (var q = 0u; q < BK / 4u; q++) {
      var cb: array<vec4f, 8>;
      for (var j = 0u; j < 8u; j++) {
        cb[j] = bt[(lid.x + 8u * j) * RS + q];
      }
      for (var i = 0u; i < 8u; i++) {
        let av = at[(lid.y + 8u * i) * RS + q];
        for (var j = 0u; j < 8u; j++) {
          var s = acc[i][j];
          s += av.x * cb[j].x;
          s += av.y * cb[j].y;
          s += av.z * cb[j].z;
          s += av.w * cb[j].w;
          acc[i][j] = s;
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let r = row0 + lid.y + 8u * i;
    for (var j = 0u; j < 8u; j++) {
      let col = col0 + lid.x + 8u * j;
      if (r < p.m && col < p.n) {
        let o = p.c_off + r * p.n + col;
        var v = p.alpha * acc[i][j];
        if (p.accumulate != 0u) {
          v += c[o];
        }
        c[o] = v;
      }
    }
  }
}
