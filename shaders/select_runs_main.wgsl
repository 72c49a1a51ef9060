// Pass 1 of the selection as its own kernel (lane kernels compiled with SEL_FUSED = false): one
// invocation per trajectory of the chunk reads the CCI the metrics kernel wrote and publishes its
// candidate; runs of one group are then reduced over the whole workgroup (select_runs.wgsl). The
// bindings are the metrics kernels', so the host binds the same resources; E and the other
// inputs of the metrics are not read.

override WG: u32 = 256u;
override SLOTS: u32 = WG;   // one trajectory per invocation

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(5) var<storage, read> baseKey: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read> groups: array<u32>;
@group(0) @binding(7) var<storage, read_write> outWords: array<u32>;
@group(0) @binding(8) var<storage, read_write> selRec: array<SelRec>;
@group(0) @binding(9) var<storage, read_write> groupState: array<GroupState>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(num_workgroups) wgCount: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  // Not P.wgPerRow: that describes the metrics kernel's dispatch, which has other workgroup counts.
  let wgIndex = wgId.x + wgId.y * wgCount.x;
  let wgStart = wgIndex * SLOTS;
  if (wgStart >= P.n) { return; }   // workgroup-uniform
  let count = min(SLOTS, P.n - wgStart);
  let i = wgStart + lid;
  if (lid < count) {
    publishRun(lid, groupAt(i), selCandidate(i, bitcast<f32>(outWords[5u * outStride(P.n) + i])));
  }
  workgroupBarrier();
  reduceRuns(lid, count, wgStart, wgIndex);
}
