// Lane exchanges for ecr_lanes.wgsl through workgroup memory, for adapters without subgroups: the
// whole workgroup acts as one subgroup of WG lanes. Two barriers per exchange make it slow; it
// exists so the lane kernel's logic runs (and is tested) on every adapter.

var<workgroup> xchg: array<u32, WG>;
var<workgroup> xchg4: array<vec4<u32>, WG>;   // only the rows layout exchanges vectors
var<private> gLid: u32;

fn exchangeU(x: u32, src: u32) -> u32 {
  workgroupBarrier();
  xchg[gLid] = x;
  workgroupBarrier();
  return xchg[src];
}
fn xorF(x: f32, mask: u32) -> f32 { return bitcast<f32>(exchangeU(bitcast<u32>(x), gLid ^ mask)); }
fn xorU(x: u32, mask: u32) -> u32 { return exchangeU(x, gLid ^ mask); }
fn xorV4(x: vec4<f32>, mask: u32) -> vec4<f32> {
  workgroupBarrier();
  xchg4[gLid] = bitcast<vec4<u32>>(x);
  workgroupBarrier();
  return bitcast<vec4<f32>>(xchg4[gLid ^ mask]);
}
fn readLaneF(x: f32, lane: u32) -> f32 { return bitcast<f32>(exchangeU(bitcast<u32>(x), lane)); }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  gLid = lid;
  lanesMain(wgId, lid, lid);
}
