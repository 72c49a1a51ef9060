// Passes 2-4 of per-group selection (pass 1, the max of the high key words, is fused into
// ecr_metrics.wgsl). Each pass runs over the whole batch before the next starts:
//   refine: among records whose admissible high word is the group's best, max of the low word;
//           lowest index among records holding the best CCI (the fallback);
//   index:  lowest index among records holding the best full admissible key;
//   finish: per group, the admissible choice if any, else the fallback; -1 for an empty group.

override WG: u32 = 128u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> selRec: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> groupState: array<GroupState>;
@group(0) @binding(3) var<storage, read_write> selected: array<i32>;

@compute @workgroup_size(WG)
fn refine(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatWorkgroup(wgId, P.wgPerRow) * WG + lid;
  if (i >= P.n) { return; }
  let r = selRec[i];
  let g = r.x;
  if (r.y != 0u && r.y == atomicLoad(&groupState[g].admHi)) { atomicMax(&groupState[g].admLo, r.z); }
  if (r.w == atomicLoad(&groupState[g].anyKey)) { atomicMin(&groupState[g].anyIdx, P.chunkStart + i); }
}

@compute @workgroup_size(WG)
fn index(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatWorkgroup(wgId, P.wgPerRow) * WG + lid;
  if (i >= P.n) { return; }
  let r = selRec[i];
  let g = r.x;
  if (r.y != 0u && r.y == atomicLoad(&groupState[g].admHi) && r.z == atomicLoad(&groupState[g].admLo)) {
    atomicMin(&groupState[g].admIdx, P.chunkStart + i);
  }
}

// Here P.n is the number of groups.
@compute @workgroup_size(WG)
fn finish(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = flatWorkgroup(wgId, P.wgPerRow) * WG + lid;
  if (g >= P.n) { return; }
  let hasAdmissible = atomicLoad(&groupState[g].admHi) != 0u;
  let idx = select(atomicLoad(&groupState[g].anyIdx), atomicLoad(&groupState[g].admIdx), hasAdmissible);
  selected[g] = bitcast<i32>(idx); // 0xffffffff (no member) reads as -1
}
