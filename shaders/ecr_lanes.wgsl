// Fused ECR metrics on lanes: LP lanes (a power of two, at most the subgroup size) hold one
// trajectory, and the included layout file says what each lane holds: one component
// (lanes_components.wgsl) or 4 consecutive components (lanes_rows.wgsl). Exchanges between a
// trajectory's lanes (xorF, xorU, xorV4, readLaneF) come from lanes_subgroup.wgsl (subgroup
// shuffles) or lanes_emulated.wgsl (workgroup memory, for adapters without subgroups).
//
// Every exchange is executed by every lane (dead trajectories read a clamped index and write
// nothing), which keeps them in uniform control flow. Outputs and admissibility words have the
// layout of ecr_metrics.wgsl. With SEL_FUSED, pass 1 of the selection (select_runs.wgsl) runs at
// the end of this kernel over the workgroup's WG / LP trajectories; without it the host runs
// select_runs_main.wgsl after this kernel, over the CCIs written here.

override WG: u32 = 256u;   // invocations per workgroup; WG / LP trajectories (a multiple of 4)
override LP: u32 = 8u;     // lanes per trajectory: a power of two, <= the subgroup size
override SLOTS: u32 = WG / LP;
override SEL_FUSED: bool = true;
// Benchmarks only (profile() with a probe; the outputs are then not metrics): 1 = load E and
// store outputs without computing metrics; 2 = compute the metrics of generated values without
// loading E; 3, 4, 5 (rows layout) = leave CR, PD, TS out. They apportion the kernel's time.
override PROBE: u32 = 0u;
// All CR weights of the m components equal (the default): any changed rank costs that weight, so
// CR needs only whether a row's order changed. A compile-time switch: the per-component path,
// compiled in but not taken, cost the H200 1.1 of 1.8 ms for 10M trajectories (run 13).
override CR_UNIFORM: bool = true;
const MAXT: u32 = 16u;

@group(0) @binding(0) var<uniform> P: Params;
// binding 1 (E) is declared by the layout file, with the type its loads want.
@group(0) @binding(2) var<storage, read> policy: array<f32>;
@group(0) @binding(3) var<storage, read> rewardDiff: array<f32>;
@group(0) @binding(4) var<storage, read> tsEmb: array<f32>;
@group(0) @binding(5) var<storage, read> baseKey: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read> groups: array<u32>;
@group(0) @binding(7) var<storage, read_write> outWords: array<u32>;
@group(0) @binding(8) var<storage, read_write> selRec: array<SelRec>;
@group(0) @binding(9) var<storage, read_write> groupState: array<GroupState>;

var<workgroup> admWords: array<atomic<u32>, 64>;   // SLOTS / 4 <= 64 words

fn sumSeg(x: f32) -> f32 {
  var s = x;
  for (var o = 1u; o < LP; o <<= 1u) { s += xorF(s, o); }
  return s;
}
fn maxSeg(x: f32) -> f32 {
  var s = x;
  for (var o = 1u; o < LP; o <<= 1u) { s = max(s, xorF(s, o)); }
  return s;
}
fn orSeg(x: u32) -> u32 {
  var s = x;
  for (var o = 1u; o < LP; o <<= 1u) { s |= xorU(s, o); }
  return s;
}

fn lanesMain(wgId: vec3<u32>, lid: u32, sgLane: u32) {
  let wgIndex = flatWorkgroup(wgId, P.wgPerRow);
  let wgStart = wgIndex * SLOTS;
  if (wgStart >= P.n) { return; }   // workgroup-uniform
  let slot = lid / LP;
  let j = lid % LP;
  let i = wgStart + slot;
  let live = i < P.n;
  let ic = min(i, P.n - 1u);
  if (lid < SLOTS / 4u) { atomicStore(&admWords[lid], 0u); }

  var r: Metrics;
  if (PROBE == 1u) {
    let v = laneLoadSum(ic, j, lid, wgStart);
    r = Metrics(v, v, v, v, v);
  } else {
    r = laneMetrics(ic, j, sgLane, lid, wgStart);
  }

  let cci = cciOf(r);
  let writer = live && j == 0u;
  if (writer) { storeMetrics(i, r, cci); }
  workgroupBarrier();   // admWords zeroed
  if (writer && cci >= P.tau) { atomicOr(&admWords[slot >> 2u], 1u << (8u * (slot & 3u))); }
  let fused = SEL_FUSED && hasFlag(P, FLAG_SELECT);
  // Each trajectory's candidate goes to workgroup memory, published by the barrier the
  // admissible bytes need anyway.
  if (fused && writer) { publishRun(slot, groupAt(i), selCandidate(i, cci)); }
  workgroupBarrier();
  // SLOTS is a multiple of 4 (the host guarantees it), so wgStart is too: whole words per workgroup.
  let count = min(SLOTS, P.n - wgStart);
  if (lid * 4u < count) { outWords[6u * outStride(P.n) + (wgStart >> 2u) + lid] = atomicLoad(&admWords[lid]); }
  if (!fused) { return; }   // uniform: the reduction's barriers follow
  reduceRuns(lid, count, wgStart, wgIndex);
}
