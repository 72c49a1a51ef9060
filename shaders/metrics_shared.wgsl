// Declarations shared by the two metrics kernels (ecr_metrics.wgsl, staged; ecr_lanes.wgsl, one
// lane per component). Both declare the same bindings under the same names (P, policy,
// rewardDiff, outWords), which these helpers read and write.

// T and m as constants (nonzero) unroll loops.
override T_FIXED: u32 = 0u;
override M_FIXED: u32 = 0u;

struct Metrics { evb: f32, cr: f32, ts: f32, es: f32, pd: f32 }

fn cciOf(r: Metrics) -> f32 {
  let w0 = P.w[0];
  return w0.x * (1.0 - r.evb) + w0.y * (1.0 - r.cr) + w0.z * r.ts + w0.w * r.es + P.w[1].x * (1.0 - r.pd);
}

// Trajectory i's metrics into the output arrays (consecutive invocations write consecutive words).
fn storeMetrics(i: u32, r: Metrics, cci: f32) {
  let S = outStride(P.n);
  outWords[i] = bitcast<u32>(r.evb);
  outWords[S + i] = bitcast<u32>(r.cr);
  outWords[2u * S + i] = bitcast<u32>(r.ts);
  outWords[3u * S + i] = bitcast<u32>(r.es);
  outWords[4u * S + i] = bitcast<u32>(r.pd);
  outWords[5u * S + i] = bitcast<u32>(cci);
}

fn nT() -> u32 { if (T_FIXED != 0u) { return T_FIXED; } return P.t; }
fn nM() -> u32 { if (M_FIXED != 0u) { return M_FIXED; } return P.m; }

fn crWeight(j: u32) -> f32 { return P.crW[j >> 2u][j & 3u]; }

fn esFromRewards(i: u32) -> f32 {
  let t = nT();
  var mean = 0.0;
  for (var s = 0u; s < t; s++) { mean += rewardDiff[i * t + s]; }
  mean /= f32(t);
  var v = 0.0;
  for (var s = 0u; s < t; s++) { let dv = rewardDiff[i * t + s] - mean; v += dv * dv; }
  v /= f32(t);
  return clamp(1.0 - v / P.vmax, 0.0, 1.0);
}

fn pdFromPolicy(i: u32) -> f32 {
  let a = P.a;
  let base = i * nT() * a;
  var klSum = 0.0;
  var prevSum = 0.0;
  for (var j = 0u; j < a; j++) { prevSum += policy[base + j]; }
  for (var s = 1u; s < nT(); s++) {
    var curSum = 0.0;
    for (var j = 0u; j < a; j++) { curSum += policy[base + s * a + j]; }
    var kl = 0.0;
    for (var j = 0u; j < a; j++) {
      let p = policy[base + s * a + j] / (curSum + 1e-10);
      let q = policy[base + (s - 1u) * a + j] / (prevSum + 1e-10);
      kl += p * log((p + 1e-10) / (q + 1e-10));
    }
    klSum += max(kl, 0.0);
    prevSum = curSum;
  }
  return min(1.0, klSum / f32(nT() - 1u) / P.dmax);
}

fn evbFromTrace(ss: f32) -> f32 {
  let t = nT();
  let m = nM();
  // Only the trace of C is needed: tr(C) = (1-lambda) tr(S) + lambda tr(Target), and Ledoit-Wolf
  // keeps the trace of its maximum-likelihood covariance.
  if (hasFlag(P, FLAG_SHRINK_LW)) { return min(1.0, ss / f32(t) / f32(m)); }
  let trS = ss / f32(t - 1u);
  let trTarget = select(f32(m), trS, hasFlag(P, FLAG_SHRINK_SCALED));
  return min(1.0, ((1.0 - P.lambda) * trS + P.lambda * trTarget) / f32(m));
}
