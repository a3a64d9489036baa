// The sampler of VALL-E v1 (vall_e/models/base.py: Base.sample with vall_e/samplers.py), one row
// of logits per workgroup, in the original's stage order:
//   1. repetition penalty  (in place) x[tok] /= factor · d^decay for each previous token, once per
//                           occurrence, d = distance; rep_mode 1: every row, 2: rows > i (NAR)
//   2. length penalty      (in place) x[len_token] /= (len(prev) + 1)^factor   (AR)
//   3. min-p               (copy)     drop p < min_p · p_max, keeping the 32 largest logits
//   4. top-k, top-p        (in place) keep x ≥ k-th largest; keep the top tokens up to and
//                           including the first whose cumulative probability exceeds top_p
//   5. temperature         dynamic (in place) when |T − T_min| ≥ 0.001, else x / T (copy) if T > 0
//   6. top-nσ              (copy)     keep x ≥ max − σ (unbiased std, n always 1); after any
//                           filter the original's std is NaN and every logit becomes −inf
//   7. choice              argmax (greedy) or a categorical draw; score = softmax(x)[choice]
// "In place" stages modify the logits rows themselves, as the PyTorch code does; the first
// "copy" stage copies the row to the work row first and the rest runs there. So a second call on
// the same logits (NAR-len scoring) sees the in-place filters of the first call, like the original.
//
// Filtered logits are NEG_BIG (the original's −inf); every stage leaves them alone.
// Random draws: u = pcg4d(seed, stream, counter, row).x / 2^32 (Jarzynski & Olano 2020, "Hash
// Functions for GPU Rendering"), a counter-based hash, so a seed reproduces the same tokens.
//
// Bindings: logits (·) f32: rows at logits_off, work rows at work_off (stride cols) | tokens (·)
// u32: previous tokens at prev_off (n_prev), the choice of row r at out_off + r | scores (·) f32 at
// score_off + r | penalties (·) f32: divisor for distance d at pen_off + d.
// Grid: (rows). cols ≤ 2048 when min-p, top-k or top-p is on (they sort the row in workgroup memory).
// Row maxima and sums are workgroup reductions (_lanes.wgsl: the barrier tree, or subgroups).

struct Params {
  rows: u32,
  cols: u32,
  logits_off: u32,
  work_off: u32,
  prev_off: u32,
  n_prev: u32,
  rep_mode: u32,
  pen_off: u32,
  len_pen_div: f32,
  len_pen_token: u32,
  min_p: f32,
  top_k: u32,
  top_p: f32,
  temp_mode: u32,
  temperature: f32,
  min_temperature: f32,
  top_no: u32,
  greedy: u32,
  seed: u32,
  stream: u32,
  counter: u32,
  out_off: u32,
  score_off: u32,
}

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;
@group(0) @binding(3) var<storage, read> penalties: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;
const MAX_SORT: u32 = 2048u;
// Anything at or below this is a filtered logit.
const FILTERED_BELOW: f32 = -1.0e38;

var<workgroup> sorted: array<f32, MAX_SORT>;
var<workgroup> red: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
var<workgroup> shared_value: f32;

fn filtered(v: f32) -> bool {
  return v <= FILTERED_BELOW;
}

fn sync() {
  storageBarrier();
  workgroupBarrier();
}

fn row_max(base: u32, lanes: Lanes) -> f32 {
  var m = NEG_BIG;
  for (var i = lanes.li; i < p.cols; i += WG) {
    m = max(m, logits[base + i]);
  }
  return workgroup_max(m, lanes);
}

// Σ exp(x − m) over unfiltered entries.
fn row_exp_sum(base: u32, m: f32, lanes: Lanes) -> f32 {
  var s = 0.0;
  for (var i = lanes.li; i < p.cols; i += WG) {
    let v = logits[base + i];
    if (!filtered(v)) {
      s += exp(v - m);
    }
  }
  return workgroup_sum(s, lanes);
}

// Copies the row into workgroup memory and sorts it in descending order (bitonic network).
fn sort_row(base: u32, li: u32) {
  var n2 = 1u;
  while (n2 < p.cols) {
    n2 <<= 1u;
  }
  for (var i = li; i < n2; i += WG) {
    var v = NEG_BIG;
    if (i < p.cols) {
      v = logits[base + i];
    }
    sorted[i] = v;
  }
  workgroupBarrier();
  for (var k = 2u; k <= n2; k <<= 1u) {
    for (var j = k >> 1u; j > 0u; j >>= 1u) {
      for (var i = li; i < n2; i += WG) {
        let partner = i ^ j;
        if (partner > i) {
          let a = sorted[i];
          let b = sorted[partner];
          let descending = (i & k) == 0u;
          if ((descending && a < b) || (!descending && a > b)) {
            sorted[i] = b;
            sorted[partner] = a;
          }
        }
      }
      workgroupBarrier();
    }
  }
}

// Sets every entry below `threshold` to NEG_BIG.
fn drop_below(base: u32, threshold: f32, li: u32) {
  for (var i = li; i < p.cols; i += WG) {
    if (logits[base + i] < threshold) {
      logits[base + i] = NEG_BIG;
    }
  }
  sync();
}

fn pcg4d(seed: vec4u) -> vec4u {
  var v = seed * 1664525u + 1013904223u;
  v.x += v.y * v.w;
  v.y += v.z * v.x;
  v.z += v.x * v.y;
  v.w += v.y * v.z;
  v ^= v >> vec4u(16u);
  v.x += v.y * v.w;
  v.y += v.z * v.x;
  v.z += v.x * v.y;
  v.w += v.y * v.z;
  return v;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let row = wg.x;
  let work = p.work_off + row * p.cols;
  var base = p.logits_off + row * p.cols;
  var copied = false;

  // 1. Repetition penalty, serially so repeated tokens are divided in the original's order.
  if (p.rep_mode != 0u) {
    if (li == 0u) {
      for (var i = 0u; i < p.n_prev; i++) {
        let tok = tokens[p.prev_off + i];
        if ((p.rep_mode == 2u && row <= i) || tok >= p.cols) {
          continue;
        }
        let v = logits[base + tok];
        if (!filtered(v)) {
          logits[base + tok] = v / penalties[p.pen_off + p.n_prev - i];
        }
      }
    }
    sync();
  }

  // 2. Length penalty on the stop token.
  if (p.len_pen_div > 0.0) {
    if (li == 0u && p.len_pen_token < p.cols) {
      let v = logits[base + p.len_pen_token];
      if (!filtered(v)) {
        logits[base + p.len_pen_token] = v / p.len_pen_div;
      }
    }
    sync();
  }

  // 3. min-p (out of place): p_j < min_p · p_max is dropped unless among the 32 largest.
  if (p.min_p > 0.0) {
    for (var i = li; i < p.cols; i += WG) {
      logits[work + i] = logits[base + i];
    }
    sync();
    base = work;
    copied = true;
    let m = row_max(base, lanes);
    let inv = 1.0 / row_exp_sum(base, m, lanes);
    let threshold = p.min_p * inv; // p_max = exp(0) · inv
    sort_row(base, li);
    var keep_from = NEG_BIG;
    if (p.cols > 32u) {
      keep_from = sorted[31];
    }
    workgroupBarrier();
    for (var i = li; i < p.cols; i += WG) {
      let v = logits[base + i];
      if (!filtered(v) && exp(v - m) * inv < threshold && v < keep_from) {
        logits[base + i] = NEG_BIG;
      }
    }
    sync();
  }

  // 4. top-k then top-p (in place).
  if (p.top_k > 0u || p.top_p < 1.0) {
    sort_row(base, li);
    if (p.top_k > 0u) {
      let kth = sorted[min(p.top_k, p.cols) - 1u];
      workgroupBarrier();
      drop_below(base, kth, li);
      for (var i = li; i < MAX_SORT; i += WG) {
        if (sorted[i] < kth) {
          sorted[i] = NEG_BIG;
        }
      }
      workgroupBarrier();
    }
    if (p.top_p < 1.0) {
      let m = sorted[0];
      var s = 0.0;
      for (var i = li; i < p.cols; i += WG) {
        if (!filtered(sorted[i])) {
          s += exp(sorted[i] - m);
        }
      }
      let inv = 1.0 / workgroup_sum(s, lanes);
      if (li == 0u) {
        // Cumulative probabilities in sorted order, compensated (the original sums in double).
        var cum = vec2f(0.0);
        var cut = NEG_BIG;
        for (var i = 0u; i < p.cols; i++) {
          let v = sorted[i];
          if (filtered(v)) {
            break;
          }
          cum = kahan_add(cum, exp(v - m) * inv);
          if (cum.x > p.top_p) {
            cut = v;
            break;
          }
        }
        shared_value = cut;
      }
      workgroupBarrier();
      let cut = shared_value;
      workgroupBarrier();
      drop_below(base, cut, li);
    }
  }

  // 5. Temperature.
  if (p.temp_mode == 2u) {
    // Dynamic temperature (in place), from the probability of the top token.
    let m = row_max(base, lanes);
    let p_max = 1.0 / row_exp_sum(base, m, lanes);
    let t = p.temperature -
      (p.temperature - p.min_temperature) / (1.0 + exp(-10.0 * (p_max - 0.5)));
    for (var i = li; i < p.cols; i += WG) {
      let v = logits[base + i];
      if (!filtered(v)) {
        logits[base + i] = v / t;
      }
    }
    sync();
  } else if (p.temp_mode == 1u) {
    for (var i = li; i < p.cols; i += WG) {
      let v = logits[base + i];
      var out = v;
      if (!filtered(v)) {
        out = v / p.temperature;
      }
      logits[work + i] = out;
    }
    sync();
    base = work;
    copied = true;
  }

  // 6. top-nσ (out of place).
  if (p.top_no != 0u) {
    if (!copied) {
      for (var i = li; i < p.cols; i += WG) {
        logits[work + i] = logits[base + i];
      }
      sync();
      base = work;
    }
    var any_filtered = 0.0;
    var sum = 0.0;
    var m = NEG_BIG;
    for (var i = li; i < p.cols; i += WG) {
      let v = logits[base + i];
      m = max(m, v);
      sum += v;
      if (filtered(v)) {
        any_filtered = 1.0;
      }
    }
    let degenerate = workgroup_max(any_filtered, lanes) > 0.0;
    m = workgroup_max(m, lanes);
    let mean = workgroup_sum(sum, lanes) / f32(p.cols);
    var sq = 0.0;
    for (var i = li; i < p.cols; i += WG) {
      let dv = logits[base + i] - mean;
      sq += dv * dv;
    }
    let sigma = sqrt(workgroup_sum(sq, lanes) / f32(p.cols - 1u));
    for (var i = li; i < p.cols; i += WG) {
      if (degenerate || logits[base + i] < m - sigma) {
        logits[base + i] = NEG_BIG;
      }
    }
    sync();
  }

  // 7. Choice and score.
  let m = row_max(base, lanes);
  let total = row_exp_sum(base, m, lanes);
  var choice = 0u;
  if (p.greedy != 0u) {
    var best = NEG_BIG;
    var best_i = 0xffffffffu;
    for (var i = li; i < p.cols; i += WG) {
      let v = logits[base + i];
      if (best_i == 0xffffffffu || v > best) {
        best = v;
        best_i = i;
      }
    }
    red[li] = best;
    red_i[li] = best_i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (li < s) {
        let ov = red[li + s];
        let oi = red_i[li + s];
        if (oi != 0xffffffffu &&
          (red_i[li] == 0xffffffffu || ov > red[li] || (ov == red[li] && oi < red_i[li]))) {
          red[li] = ov;
          red_i[li] = oi;
        }
      }
      workgroupBarrier();
    }
    choice = red_i[0];
    workgroupBarrier();
  } else {
    // Inverse CDF over contiguous chunks: chunk sums, then the chunk holding the target.
    let chunk = (p.cols + WG - 1u) / WG;
    var s = 0.0;
    for (var i = li * chunk; i < min(p.cols, (li + 1u) * chunk); i++) {
      let v = logits[base + i];
      if (!filtered(v)) {
        s += exp(v - m);
      }
    }
    red[li] = s;
    workgroupBarrier();
    if (li == 0u && filtered(m)) {
      red_i[0] = 0u; // nothing to draw from (the original raises); argmax's answer
    } else if (li == 0u) {
      let h = pcg4d(vec4u(p.seed, p.stream, p.counter, row));
      let goal = f32(h.x >> 8u) * (1.0 / 16777216.0) * total;
      var acc = 0.0;
      var c = 0u;
      while (c < WG - 1u && acc + red[c] <= goal) {
        acc += red[c];
        c++;
      }
      var last = 0xffffffffu;
      var found = 0xffffffffu;
      for (var i = c * chunk; i < min(p.cols, (c + 1u) * chunk); i++) {
        let v = logits[base + i];
        if (!filtered(v)) {
          acc += exp(v - m);
          last = i;
          if (acc > goal) {
            found = i;
            break;
          }
        }
      }
      if (found == 0xffffffffu) {
        // Rounding put the target past the chunk's end: the last unfiltered token up to it.
        for (var i = 0u; i < min(p.cols, (c + 1u) * chunk); i++) {
          if (!filtered(logits[base + i])) {
            last = i;
          }
        }
        found = last;
      }
      red_i[0] = found;
    }
    workgroupBarrier();
    choice = red_i[0];
  }
  if (li == 0u) {
    tokens[p.out_off + row] = choice;
    let v = logits[base + choice];
    if (filtered(m)) {
      // Every logit filtered: the original's softmax gives NaN. A runtime bitcast (not a
      // constant, which WGSL forbids to be NaN).
      scores[p.score_off + row] = bitcast<f32>(0x7fc00000u | (p.rows & 0u));
    } else {
      scores[p.score_off + row] = exp(v - m) * (1.0 / total);
    }
  }
}
