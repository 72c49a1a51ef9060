// TS from step embeddings: one workgroup per trajectory; each invocation accumulates squared norms
// and consecutive-step dot products over a strided slice of the d dimensions (coalesced loads),
// then the workgroup sums them in a tree. Writes TS per trajectory for ecr_metrics.wgsl to fold in.

override WG: u32 = 64u;          // invocations per trajectory (a power of two)
// T as a constant (when nonzero): the per-step accumulators unroll into registers. 0: read P.t.
override T_FIXED: u32 = 0u;
const MAX_T: u32 = 16u;

@group(0) @binding(0) var<uniform> P: Params;          // P.a holds d
@group(0) @binding(1) var<storage, read> emb: array<f32>;
@group(0) @binding(2) var<storage, read_write> tsOut: array<f32>;

override PARTIALS: u32 = 2u * MAX_T * WG;
var<workgroup> partial: array<f32, PARTIALS>;   // slot s at [s * WG ..]: norms, then dots at MAX_T + s

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatWorkgroup(wgId, P.wgPerRow);
  if (i >= P.n) { return; }
  let t = select(P.t, T_FIXED, T_FIXED != 0u);
  let d = P.a;
  let base = i * t * d;
  var norms: array<f32, MAX_T>;
  var dots: array<f32, MAX_T>;
  for (var k = lid; k < d; k += WG) {
    var prev = emb[base + k];
    norms[0] += prev * prev;
    for (var s = 1u; s < t; s++) {
      let x = emb[base + s * d + k];
      norms[s] += x * x;
      dots[s] += x * prev;
      prev = x;
    }
  }
  for (var s = 0u; s < t; s++) {
    partial[s * WG + lid] = norms[s];
    partial[(MAX_T + s) * WG + lid] = dots[s];
  }
  workgroupBarrier();
  for (var width = WG / 2u; width > 0u; width /= 2u) {
    if (lid < width) {
      for (var s = 0u; s < t; s++) {
        partial[s * WG + lid] += partial[s * WG + lid + width];
        partial[(MAX_T + s) * WG + lid] += partial[(MAX_T + s) * WG + lid + width];
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    var sum = 0.0;
    for (var s = 1u; s < t; s++) {
      let na = sqrt(partial[s * WG]);
      let nb = sqrt(partial[(s - 1u) * WG]);
      var dist = 1.0;
      if (na >= 1e-12 && nb >= 1e-12) { dist = clamp(1.0 - partial[(MAX_T + s) * WG] / (na * nb), 0.0, 1.0); }
      sum += dist;
    }
    tsOut[i] = 1.0 - sum / f32(t - 1u);
  }
}
