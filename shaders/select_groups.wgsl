// Passes 2-4 of per-group selection (pass 1, the max of the high key words, is fused into
// ecr_metrics.wgsl). Records there are already reduced per run of one group within a workgroup:
// only the first record of a run carries its group (tag = group + 1); the others stay as the
// once-per-batch clear left them (tag 0) and are skipped.
// Each pass runs over the whole batch before the next starts:
//   refine: among records whose admissible high word is the group's best, max of the low word;
//           lowest index among records holding the best CCI (the fallback);
//   index:  lowest index among records holding the best full admissible key;
//   finish: per group, the admissible choice if any, else the fallback; -1 for an empty group.

override WG: u32 = 128u;

struct SelRec { tag: u32, admHi: u32, admLo: u32, anyKey: u32, admIdx: u32, anyIdx: u32 }

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> selRec: array<SelRec>;
@group(0) @binding(2) var<storage, read_write> groupState: array<GroupState>;
@group(0) @binding(3) var<storage, read_write> selected: array<i32>;

@compute @workgroup_size(WG)
fn refine(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatWorkgroup(wgId, P.wgPerRow) * WG + lid;
  if (i >= P.n) { return; }
  let tag = selRec[i].tag;
  if (tag == 0u) { return; }
  let g = tag - 1u;
  let r = selRec[i];
  if (r.admHi != 0u && r.admHi == atomicLoad(&groupState[g].admHi)) { atomicMax(&groupState[g].admLo, r.admLo); }
  if (r.anyKey == atomicLoad(&groupState[g].anyKey)) { atomicMin(&groupState[g].anyIdx, r.anyIdx); }
}

@compute @workgroup_size(WG)
fn index(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatWorkgroup(wgId, P.wgPerRow) * WG + lid;
  if (i >= P.n) { return; }
  let tag = selRec[i].tag;
  if (tag == 0u) { return; }
  let g = tag - 1u;
  let r = selRec[i];
  if (r.admHi != 0u && r.admHi == atomicLoad(&groupState[g].admHi) && r.admLo == atomicLoad(&groupState[g].admLo)) {
    atomicMin(&groupState[g].admIdx, r.admIdx);
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
