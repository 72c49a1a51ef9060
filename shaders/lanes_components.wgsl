// Per-trajectory metrics of the lane kernel (ecr_lanes.wgsl) with one lane per component: lane j
// holds E[i][s][j] for every step s. For a fixed step the lanes of a subgroup read whole 32-byte
// sectors of consecutive trajectories. Sums over components, ranks and "any rank changed" go
// through XOR butterflies within the segment. Padding lanes (j >= m) hold neutral values: 0 for
// sums, -1 (below every E value, and only tied with later padding lanes) for ranks.

fn loadE(v: u32) -> f32 {
  if (E_UNORM16) {
    let u = unpack2x16unorm(E[v >> 1u]);
    return select(u.x, u.y, (v & 1u) == 1u);
  }
  return bitcast<f32>(E[v]);
}

// Metrics of chunk trajectory ic as seen by its lane j (every lane returns the same values; lane
// sgLane of the subgroup).
fn laneMetrics(ic: u32, j: u32, sgLane: u32) -> Metrics {
  let t = T_FIXED;
  let m = M_FIXED;
  let comp = j < m;
  let src = ic * t * m + min(j, m - 1u);
  var x: array<f32, MAXT>;
  for (var s = 0u; s < t; s++) { x[s] = select(0.0, loadE(src + s * m), comp); }

  // This lane's sum of squared deviations: EVB's trace term and, in lane confIndex, ES's variance.
  var mean = 0.0;
  for (var s = 0u; s < t; s++) { mean += x[s]; }
  mean /= f32(t);
  var ss = 0.0;
  for (var s = 0u; s < t; s++) { let dv = x[s] - mean; ss += dv * dv; }

  var r: Metrics;
  if (hasFlag(P, FLAG_EVB_MAXABS)) {
    r.evb = evbFromMaxAbs(maxSeg(abs(x[0] - x[t - 1u])));
  } else {
    r.evb = evbFromTrace(sumSeg(ss));
  }

  // rank(j) = #{k : k ranks before j}, one exchange per other lane.
  var changedRows = 0u;
  var prevRank = 0u;
  for (var s = 0u; s < t; s++) {
    let v = select(-1.0, x[s], comp);
    var rank = 0u;
    for (var d = 1u; d < LP; d++) {
      let y = xorF(v, d);
      rank += select(0u, 1u, ranksBefore(y, v, (j ^ d) < j));
    }
    if (s > 0u && rank != prevRank && comp) { changedRows |= 1u << s; }
    prevRank = rank;
  }
  var crTotal = 0.0;
  if (CR_UNIFORM) {
    crTotal = f32(countOneBits(orSeg(changedRows))) * crWeight(0u);
  } else {
    for (var s = 1u; s < t; s++) {
      crTotal += maxSeg(select(0.0, crWeight(j), ((changedRows >> s) & 1u) != 0u));
    }
  }
  r.cr = crFromPenalties(crTotal);

  if (hasFlag(P, FLAG_TS_EMB)) {
    r.ts = tsEmb[ic];
  } else {
    let invSqrtM = 1.0 / sqrt(f32(m));
    var sum = 0.0;
    for (var s = 1u; s < t; s++) {
      let dv = x[s] - x[s - 1u];
      sum += tsStepProxy(sumSeg(dv * dv), invSqrtM);
    }
    r.ts = tsFromDistances(sum);
  }

  let segLane0 = sgLane - j;
  var esLocal = 0.0;
  if (hasFlag(P, FLAG_REWARDS)) {
    if (j == 0u) { esLocal = esFromRewards(ic); }
  } else {
    esLocal = esFromVariance(ss / f32(t));
  }
  r.es = readLaneF(esLocal, segLane0 + select(P.confIndex, 0u, hasFlag(P, FLAG_REWARDS)));

  if (hasFlag(P, FLAG_POLICY)) {
    var pdLocal = 0.0;
    if (j == 0u) { pdLocal = pdFromPolicy(ic); }
    r.pd = readLaneF(pdLocal, segLane0);
  } else {
    // klTerm in another form, KL(p_s || p_{s-1}) = sum_j p * (log(p + eps) - log(q + eps)), so
    // each lane computes one log per step and keeps it for the next step.
    var prevLog = log(x[0] / (sumSeg(x[0]) + 1e-10) + 1e-10);
    var klSum = 0.0;
    for (var s = 1u; s < t; s++) {
      let p = x[s] / (sumSeg(x[s]) + 1e-10);
      let lp = log(p + 1e-10);
      klSum += max(sumSeg(select(0.0, p * (lp - prevLog), comp)), 0.0);
      prevLog = lp;
    }
    r.pd = pdFromKlSum(klSum);
  }

  return r;
}
