// One time step of one LSTM layer (PyTorch nn.LSTM, gate order i, f, g, o):
//   gates = gx[t] + W_hh · h_{t-1};  c_t = σ(f) c_{t-1} + σ(i) tanh(g);  h_t = σ(o) tanh(c_t)
// where gx[t] = W_ih · x_t + b_ih + b_hh was computed for all steps beforehand by one GEMM.
// The hidden sequence lives in hs with one extra leading row: row t holds h_{t-1} (row 0 is the
// initial or carried state) and this step writes row t + 1. The cell state c is updated in place.
//
// Bindings: hs (T + 1, H) f32 at hs_off | c (H) f32 at c_off | gx (T, 4H) f32 at gx_off |
//   w_hh (4H, H) W at w_off.
// Grid: (ceil(H / 8)). A workgroup owns 8 hidden units, i.e. 32 gate rows; 8 lanes per row sum
// a strided slice of h_{t-1}, reduce in workgroup memory, then 8 threads update the cells.
//
// σ and tanh are written with exp only, in forms that neither overflow nor lose more than an ulp
// of 1 in absolute terms: the WGSL tanh guarantee (1e-5 absolute) moves EnCodec's audio by
// ~1e-4 through the recurrence.

struct Params {
  h: u32,
  t: u32,
  hs_off: u32,
  c_off: u32,
  gx_off: u32,
  w_off: u32,
}

@group(0) @binding(0) var<storage, read_write> hs: array<f32>;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> gx: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 8u;
const UNITS: u32 = 8u;

var<workgroup> partial: array<f32, 256>;

fn sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

fn tanh_exact(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % LANES;
  let slot = li / LANES; // gate · UNITS + unit
  let gate = slot / UNITS;
  let unit = wg.x * UNITS + slot % UNITS;
  var acc = 0.0;
  if (unit < p.h) {
    let wb = p.w_off + (gate * p.h + unit) * p.h;
    let hb = p.hs_off + p.t * p.h;
    for (var k = lane; k < p.h; k += LANES) {
      acc += f32(w[wb + k]) * hs[hb + k];
    }
  }
  partial[li] = acc;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      partial[li] += partial[li + s];
    }
    workgroupBarrier();
  }
  let u = wg.x * UNITS + li;
  if (li < UNITS && u < p.h) {
    let g = p.gx_off + p.t * 4u * p.h + u;
    let gi = gx[g] + partial[(0u * UNITS + li) * LANES];
    let gf = gx[g + p.h] + partial[(1u * UNITS + li) * LANES];
    let gg = gx[g + 2u * p.h] + partial[(2u * UNITS + li) * LANES];
    let go = gx[g + 3u * p.h] + partial[(3u * UNITS + li) * LANES];
    let cell = sigmoid(gf) * c[p.c_off + u] + sigmoid(gi) * tanh_exact(gg);
    c[p.c_off + u] = cell;
    hs[p.hs_off + (p.t + 1u) * p.h + u] = sigmoid(go) * tanh_exact(cell);
  }
}
