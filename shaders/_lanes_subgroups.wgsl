// Whole-workgroup reductions of the row kernels (256 invocations) on subgroups: what a device
// with `subgroups` and WGSL's `subgroup_id` compiles instead of _lanes.wgsl (same names, read
// its header). Each subgroup reduces in registers, its first invocation stores the result at the
// subgroup's index, and every subgroup folds those (lane j the indices j, j + size, …) and reduces
// again: two barriers where the tree takes nine, for any subgroup size (4 to 128) and any mapping
// of invocations to subgroups. Sums round in the device's subgroup order instead of the tree's,
// the same on every row and every call.

struct Lanes {
  @builtin(local_invocation_index) li: u32,
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) size: u32,
  @builtin(subgroup_id) id: u32,
  @builtin(num_subgroups) count: u32,
}

// The sum of v over the workgroup, in every invocation.
fn workgroup_sum(v: f32, lanes: Lanes) -> f32 {
  let own = subgroupAdd(v);
  if (lanes.lane == 0u) {
    wg_partial[lanes.id] = own;
  }
  workgroupBarrier();
  var folded = 0.0;
  for (var k = lanes.lane; k < lanes.count; k += lanes.size) {
    folded += wg_partial[k];
  }
  let total = subgroupAdd(folded);
  workgroupBarrier();
  return total;
}

// The maximum of v over the workgroup, in every invocation.
fn workgroup_max(v: f32, lanes: Lanes) -> f32 {
  let own = subgroupMax(v);
  if (lanes.lane == 0u) {
    wg_partial[lanes.id] = own;
  }
  workgroupBarrier();
  var folded = NEG_BIG;
  for (var k = lanes.lane; k < lanes.count; k += lanes.size) {
    folded = max(folded, wg_partial[k]);
  }
  let m = subgroupMax(folded);
  workgroupBarrier();
  return m;
}
