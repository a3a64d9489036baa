// Whole-workgroup reductions of the row kernels (256 invocations, one row per workgroup) over the
// barrier tree: what a device without subgroups compiles. The host appends this file or
// _lanes_subgroups.wgsl after _common.wgsl; both define `Lanes`, `workgroup_sum` and
// `workgroup_max`. A kernel takes `lanes: Lanes` as an entry-point parameter (the builtins the
// reductions need) and reads its invocation index as `lanes.li`. Call them in uniform control
// flow, every invocation; they leave wg_partial free for the next call.

struct Lanes {
  @builtin(local_invocation_index) li: u32,
}

// The sum of v over the workgroup, in every invocation: _common's tree over 256 lanes.
fn workgroup_sum(v: f32, lanes: Lanes) -> f32 {
  return group_sum(v, lanes.li, 256u);
}

// The maximum of v over the workgroup, in every invocation.
fn workgroup_max(v: f32, lanes: Lanes) -> f32 {
  wg_partial[lanes.li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lanes.li < s) {
      wg_partial[lanes.li] = max(wg_partial[lanes.li], wg_partial[lanes.li + s]);
    }
    workgroupBarrier();
  }
  let m = wg_partial[0];
  workgroupBarrier();
  return m;
}
