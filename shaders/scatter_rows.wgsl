// Scatters rows inside one buffer: row i of a source block goes to row table[i] of a destination
// block, buf[dst_off + table[table_off + i] · width + c] = buf[src_off + i · width + c]. The
// batched decode step computes its rows' keys and values in a scratch block and scatters each to
// its own row's region of the KV cache. Source and destination rows must not overlap.
//
// Bindings: buf (·) f32 | table (rows) u32 at table_off.
// Grid: (ceil(rows · width / 256), ·): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  rows: u32,
  width: u32,
  src_off: u32,
  dst_off: u32,
  table_off: u32,
}

@group(0) @binding(0) var<storage, read_write> buf: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * 256u;
  if (e >= p.rows * p.width) {
    return;
  }
  let i = e / p.width;
  let c = e % p.width;
  buf[p.dst_off + table[p.table_off + i] * p.width + c] = buf[p.src_off + e];
}
