// TS from step embeddings. TPT invocations share one trajectory (WG / TPT trajectories per
// workgroup): each accumulates squared norms and consecutive-step dot products over a strided
// slice of the d dimensions, reading 16 bytes at a time (coalesced across the TPT lanes) with all
// steps' loads independent, so many loads are in flight. The TPT partial sums of each value then
// meet in workgroup memory (padded rows against bank conflicts), one invocation per value sums
// its row, and the first invocation of the trajectory writes TS for the metrics kernel.

override WG: u32 = 256u;
override TPT: u32 = 32u;         // invocations per trajectory
// T_FIXED (formulas.wgsl) as a constant: the per-step accumulators unroll into registers. The
// fast paths only (T <= 16); general.wgsl computes TS from embeddings itself for longer ones.
override NV: u32 = 32u;          // values per trajectory to reduce: 2 * T (norms, then dots)
override VEC4: bool = true;      // d % 4 == 0: whole 16-byte words per step
const MAX_T: u32 = 16u;

override PARTIALS: u32 = (WG / TPT) * NV * (TPT + 1u);
var<workgroup> partial: array<f32, PARTIALS>;
override TOTALS: u32 = (WG / TPT) * NV;
var<workgroup> totals: array<f32, TOTALS>;

fn scalarAt(f: u32) -> f32 { return embeddings[f >> 2u][f & 3u]; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tl = lid / TPT;
  let lane = lid % TPT;
  let i = flatWorkgroup(wgId, P.wgPerRow) * (WG / TPT) + tl;
  let valid = i < P.n;
  let t = nT();
  let d = P.d;
  var norms: array<f32, MAX_T>;
  var dots: array<f32, MAX_T>;
  if (valid) {
    if (VEC4) {
      let d4 = d >> 2u;
      let base = i * t * d4;
      for (var k = lane; k < d4; k += TPT) {
        var prev = embeddings[base + k];
        norms[0] += dot(prev, prev);
        for (var s = 1u; s < t; s++) {
          let x = embeddings[base + s * d4 + k];
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
    for (var s = 1u; s < t; s++) { sum += tsStepEmbeddings(totals[row + t + s], totals[row + s], totals[row + s - 1u]); }
    tsEmb[i] = tsFromDistances(sum);
  }
}
