// Lane exchanges for ecr_lanes.wgsl through subgroup shuffles (adapter feature `subgroups`).
// Lane numbers are subgroup_invocation_id; the host makes each trajectory's LP lanes a
// power-of-two block no larger than the adapter's minimum subgroup size, so a segment never
// straddles two subgroups.

fn xorF(x: f32, mask: u32) -> f32 { return subgroupShuffleXor(x, mask); }
fn xorU(x: u32, mask: u32) -> u32 { return subgroupShuffleXor(x, mask); }
fn xorV4(x: vec4<f32>, mask: u32) -> vec4<f32> { return subgroupShuffleXor(x, mask); }
fn readLaneF(x: f32, lane: u32) -> f32 { return subgroupShuffle(x, lane); }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sgLane: u32) {
  lanesMain(wgId, lid, sgLane);
}
