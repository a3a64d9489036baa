// The stacked Q|K|V projection rows of a full pass split into their destinations, with the
// rotary embedding of rope.wgsl (same pairing, table and arithmetic, so the same bits as `rope`
// on the parts): q ← RoPE(Q), k ← RoPE(K), v ← V, where each row of the source holds Q, K and V
// side by side (3 · heads · head_dim columns, as one GEMM over the stacked weights writes them).
//
// Bindings: q (S, d) f32 at q_off | k (S, d) f32 at k_off | v (S, d) f32 at v_off |
// qkv (S, 3d) f32 at qkv_off | pos (S) u32 at pos_off | table (max_pos, half) vec2f (cos, sin).
// Grid: (ceil(S · heads · half / 256), ·), a 2-D grid counting as consecutive rows of workgroups.
// One thread per rotated pair of one head of Q and of K, and the two values of V at those columns.

struct Params {
  s: u32,
  heads: u32,
  head_dim: u32,
  qkv_off: u32,
  q_off: u32,
  k_off: u32,
  v_off: u32,
  pos_off: u32,
}

@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> qkv: array<f32>;
@group(0) @binding(4) var<storage, read> pos: array<u32>;
@group(0) @binding(5) var<storage, read> table: array<vec2f>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let half = p.head_dim / 2u;
  let id = gid.x + gid.y * nwg.x * 256u;
  if (id >= p.s * p.heads * half) {
    return;
  }
  let d = p.heads * p.head_dim;
  let j = id % half;
  let h = (id / half) % p.heads;
  let t = id / (half * p.heads);
  let cs = table[pos[p.pos_off + t] * half + j];
  let col = h * p.head_dim + j;
  let src = p.qkv_off + t * 3u * d + col;
  let dst = t * d + col;
  var a = qkv[src];
  var b = qkv[src + half];
  q[p.q_off + dst] = a * cs.x - b * cs.y;
  q[p.q_off + dst + half] = b * cs.x + a * cs.y;
  a = qkv[src + d];
  b = qkv[src + d + half];
  k[p.k_off + dst] = a * cs.x - b * cs.y;
  k[p.k_off + dst + half] = b * cs.x + a * cs.y;
  v[p.v_off + dst] = qkv[src + 2u * d];
  v[p.v_off + dst + half] = qkv[src + 2u * d + half];
}
