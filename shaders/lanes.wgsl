// The lane kernel (the fast path where the device has subgroups): LP lanes (a power of two, at
// most the subgroup size) hold one trajectory, and the included layout file says what each lane
// holds: one component (lanes_components.wgsl) or 4 consecutive components (lanes_rows.wgsl).
// Exchanges between a trajectory's lanes (xorF, xorU, xorV4, readLaneF) come from
// lanes_subgroup.wgsl (subgroup shuffles) or lanes_emulated.wgsl (workgroup memory, for adapters
// without subgroups, which is how the tests run this logic on the software adapter).
//
// Every exchange is executed by every lane (dead trajectories read a clamped index and write
// nothing), which keeps them in uniform control flow. Outputs have the layout of staged.wgsl.

override WG: u32 = 256u;   // invocations per workgroup; WG / LP trajectories
override LP: u32 = 8u;     // lanes per trajectory: a power of two, <= the subgroup size
override SLOTS: u32 = WG / LP;
// All CR weights of the m components equal (the default): any changed rank costs that weight, so
// CR needs only whether a row's order changed. A compile-time switch: the per-component path,
// compiled in but not taken, cost the H200 1.1 of 1.8 ms for 10M trajectories (run 13).
override CR_UNIFORM: bool = true;
const MAXT: u32 = 16u;

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
  let wgStart = flatWorkgroup(wgId, P.wgPerRow) * SLOTS;
  if (wgStart >= P.n) { return; }   // workgroup-uniform
  let slot = lid / LP;
  let j = lid % LP;
  let i = wgStart + slot;
  let r = laneMetrics(min(i, P.n - 1u), j, sgLane);
  if (i < P.n && j == 0u) { storeMetrics(i, r); }
}
