// TS from step embeddings. TPT invocations share one trajectory (WG / TPT trajectories per
// workgroup): each accumulates squared norms and consecutive-step dot products over a strided
// slice of the d dimensions, reading 16 bytes at a time (coalesced across the TPT lanes) with all
// steps' loads independent, so many loads are in flight. The TPT partial sums of each value then
// meet in workgroup memory (padded rows against bank conflicts), one invocation per value sums
// its row, and the first invocation of the trajectory writes TS for ecr_metrics.wgsl.

override WG: u32 = 256u;
override TPT: u32 = 32u;         // invocations per trajectory
// T as a constant (when nonzero): the per-step accumulators unroll into registers. 0: read P.t.
override T_FIXED: u32 = 0u;
override NV: u32 = 32u;          // values per trajectory to reduce: 2 * T (norms, then dots)
override VEC4: bool = true;      // d % 4 == 0: whole 16-byte words per step
const MAX_T: u32 = 16u;

@group(0) @binding(0) var<uniform> P: Params;          // P.a holds d
@group(0) @binding(1) var<storage, read> emb: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> tsOut: array<f32>;

override PARTIALS: u32 = (WG / TPT) * NV * (TPT + 1u);
var<workgroup> partial: array<f32, PARTIALS>;
override TOTALS: u32 = (WG / TPT) * NV;
var<workgroup> totals: array<f32, TOTALS>;

fn scalarAt(f: u32) -> f32 { return emb[f >> 2u][f & 3u]; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tl = lid / TPT;
  let lane = lid % TPT;
  let i = flatWorkgroup(wgId, P.wgPerRow) * (WG / TPT) + tl;
  let valid = i < P.n;
  let t = select(P.t, T_FIXED, T_FIXED != 0u);
  let d = P.a;
  var norms: array<f32, MAX_T>;
  var dots: array<f32, MAX_T>;
  if (valid) {
    if (VEC4) {
      let d4 = d >> 2u;
      let base = i * t * d4;
      for (var k = lane; k < d4; k += TPT) {
        var prev = emb[base + k];
        norms[0] += dot(prev, prev);
        for (var s = 1u; s < t; s++) {
          let x = emb[base + s * d4 + k];
          norms[s] += dot(x, x);
          dots[s] += dot(x, prev);
          prev = x;
        }
      }
    } else {
      let base = i * t * d;
      for (var k = lane; k < d; k += TPT) {
        var prev = scalarAt(base + k);
        norms[0] += prev * prev;
        for (var s = 1u; s < t; s++) {
          let x = scalarAt(base + s * d + k);
          norms[s] += x * x;
          dots[s] += x * prev;
          prev = x;
        }
      }
    }
  }
  let row = tl * NV;
  for (var s = 0u; s < t; s++) {
    partial[(row + s) * (TPT + 1u) + lane] = norms[s];
    partial[(row + t + s) * (TPT + 1u) + lane] = dots[s];
  }
  workgroupBarrier();
  if (lane < 2u * t) {
    var sum = 0.0;
    let at = (row + lane) * (TPT + 1u);
    for (var q = 0u; q < TPT; q++) { sum += partial[at + q]; }
    totals[row + lane] = sum;
  }
  workgroupBarrier();
  if (valid && lane == 0u) {
    var sum = 0.0;
    for (var s = 1u; s < t; s++) {
      let na = sqrt(totals[row + s]);
      let nb = sqrt(totals[row + s - 1u]);
      var dist = 1.0;
      if (na >= 1e-12 && nb >= 1e-12) { dist = clamp(1.0 - totals[row + t + s] / (na * nb), 0.0, 1.0); }
      sum += dist;
    }
    tsOut[i] = 1.0 - sum / f32(t - 1u);
  }
}
