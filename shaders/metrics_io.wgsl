// What the metrics kernels (staged, lanes, general) share beyond the formulas: the output store
// and the metrics read from optional inputs by one invocation. Needs the bindings outWords,
// rewardDiff and policy, which every metrics program declares (programs/*.ts).

// Trajectory i's metrics into the output arrays (consecutive invocations write consecutive words).
fn storeMetrics(i: u32, r: Metrics) {
  let S = outStride(P.n);
  outWords[i] = bitcast<u32>(r.evb);
  outWords[S + i] = bitcast<u32>(r.cr);
  outWords[2u * S + i] = bitcast<u32>(r.ts);
  outWords[3u * S + i] = bitcast<u32>(r.es);
  outWords[4u * S + i] = bitcast<u32>(r.pd);
  outWords[5u * S + i] = bitcast<u32>(cciOf(r));
}

fn crWeight(j: u32) -> f32 { return P.crW[j >> 2u][j & 3u]; }

// ES from the reward differences of chunk trajectory i (one invocation).
fn esFromRewards(i: u32) -> f32 {
  let t = nT();
  var mean = 0.0;
  for (var s = 0u; s < t; s++) { mean += rewardDiff[i * t + s]; }
  mean /= f32(t);
  var v = 0.0;
  for (var s = 0u; s < t; s++) { let dv = rewardDiff[i * t + s] - mean; v += dv * dv; }
  v /= f32(t);
  return esFromVariance(v);
}

// KL(p_s || p_{s-1}) between two rows of width w starting at `cur` and `prev` of `policy` (one invocation).
fn klOfPolicyRows(cur: u32, prev: u32, w: u32) -> f32 {
  var curSum = 0.0;
  var prevSum = 0.0;
  for (var j = 0u; j < w; j++) { curSum += policy[cur + j]; prevSum += policy[prev + j]; }
  var kl = 0.0;
  for (var j = 0u; j < w; j++) { kl += klTerm(policy[cur + j] / (curSum + 1e-10), policy[prev + j] / (prevSum + 1e-10)); }
  return kl;
}

// PD from the policy of chunk trajectory i (one invocation).
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
      kl += klTerm(policy[base + s * a + j] / (curSum + 1e-10), policy[base + (s - 1u) * a + j] / (prevSum + 1e-10));
    }
    klSum += max(kl, 0.0);
    prevSum = curSum;
  }
  return pdFromKlSum(klSum);
}
