// The staged kernel (the fast path where the device has no subgroups): EVB, CR, TS (E fallback,
// or precomputed from embeddings by ts_embeddings.wgsl), ES, PD and CCI, one invocation per
// trajectory, for T <= 16 and m <= 32 (programs/staged.ts; larger shapes run general.wgsl).
//
// Memory: the workgroup copies its WG trajectories of E into workgroup memory with coalesced
// 16-byte loads (unpacking unorm16 on the way), row-major with an odd stride SW >= T*m so the
// per-trajectory reads that follow fall on distinct banks. Outputs are struct-of-arrays
// (one array per metric, stride S = n rounded up to 64), so consecutive invocations write
// consecutive words.
//
// Small shapes (T <= 8, m <= 8; SMALL) copy their trajectory into registers once and compute
// every metric from there: CR from one packed rank word per row (pairwise comparisons, 4 bits per
// rank), PD with log(p + eps) computed once per row. Larger shapes read workgroup memory directly.

override WG: u32 = 128u;        // trajectories (and invocations) per workgroup
override TM: u32 = 40u;         // t * m of the batch
override SW: u32 = 41u;         // staging stride per trajectory: odd, >= TM
// SMALL requires T and m <= 8 (register arrays) and compiled in (T_FIXED, M_FIXED: formulas.wgsl).
override SMALL: bool = false;

const MAXS: u32 = 8u;           // register arrays of the SMALL path


override STAGE: u32 = WG * SW;
var<workgroup> stage: array<f32, STAGE>;

// Value v of the chunk (if it is one of this workgroup's, [vs, ve)) into its staging slot.
fn stageValue(v: u32, vs: u32, ve: u32, x: f32) {
  if (v >= vs && v < ve) {
    let r = v - vs;
    stage[(r / TM) * SW + r % TM] = x;
  }
}

fn e(t: u32, j: u32, lid: u32) -> f32 { return stage[lid * SW + t * nM() + j]; }

// ---- SMALL path: the trajectory in registers ----

fn metricsSmall(i: u32, lid: u32) -> Metrics {
  let t = T_FIXED;
  let m = M_FIXED;
  var x: array<array<f32, MAXS>, MAXS>;
  for (var s = 0u; s < t; s++) {
    for (var j = 0u; j < m; j++) { x[s][j] = stage[lid * SW + s * m + j]; }
  }
  var r: Metrics;

  if (hasFlag(P, FLAG_EVB_MAXABS)) {
    var mx = 0.0;
    for (var j = 0u; j < m; j++) { mx = max(mx, abs(x[0][j] - x[t - 1u][j])); }
    r.evb = evbFromMaxAbs(mx);
  } else {
    var ss = 0.0;
    for (var j = 0u; j < m; j++) {
      var mean = 0.0;
      for (var s = 0u; s < t; s++) { mean += x[s][j]; }
      mean /= f32(t);
      for (var s = 0u; s < t; s++) { let dv = x[s][j] - mean; ss += dv * dv; }
    }
    r.evb = evbFromTrace(ss);
  }

  // CR: rank(j) = #{k : E_k > E_j or (E_k == E_j and k < j)}, 4 bits per rank in one word. Each
  // pair k < j adds one to exactly one of the two ranks.
  var total = 0.0;
  var prevRanks = 0u;
  for (var s = 0u; s < t; s++) {
    var ranks = 0u;
    // Constant trip counts (guards instead of a triangular loop) so the compiler unrolls fully.
    for (var j = 0u; j < MAXS; j++) {
      for (var k = 0u; k < MAXS; k++) {
        if (j < m && k < j) { ranks += select(1u << (4u * k), 1u << (4u * j), x[s][k] >= x[s][j]); }
      }
    }
    if (s > 0u) {
      let changed = ranks ^ prevRanks;
      var penalty = 0.0;
      for (var j = 0u; j < m; j++) {
        if (((changed >> (4u * j)) & 0xfu) != 0u) { penalty = max(penalty, crWeight(j)); }
      }
      total += penalty;
    }
    prevRanks = ranks;
  }
  r.cr = crFromPenalties(total);

  if (hasFlag(P, FLAG_TS_EMB)) {
    r.ts = tsEmb[i];
  } else {
    var sum = 0.0;
    let invSqrtM = 1.0 / sqrt(f32(m));
    for (var s = 1u; s < t; s++) {
      var d2 = 0.0;
      for (var j = 0u; j < m; j++) { let dv = x[s][j] - x[s - 1u][j]; d2 += dv * dv; }
      sum += tsStepProxy(d2, invSqrtM);
    }
    r.ts = tsFromDistances(sum);
  }

  if (hasFlag(P, FLAG_REWARDS)) {
    r.es = esFromRewards(i);
  } else {
    // confIndex is not a constant: read workgroup memory, since a dynamic index into x would
    // move the whole register array to local memory.
    let at = lid * SW + P.confIndex;
    var mean = 0.0;
    for (var s = 0u; s < t; s++) { mean += stage[at + s * m]; }
    mean /= f32(t);
    var v = 0.0;
    for (var s = 0u; s < t; s++) { let dv = stage[at + s * m] - mean; v += dv * dv; }
    v /= f32(t);
    r.es = esFromVariance(v);
  }

  if (hasFlag(P, FLAG_POLICY)) {
    r.pd = pdFromPolicy(i);
  } else {
    // klTerm in another form: KL(p_s || p_{s-1}) = sum p * (log(p + eps) - log(q + eps)), so each
    // row's logs are computed once, not twice (one log per value instead of a log of a quotient).
    var prevLog: array<f32, MAXS>;
    var prevSum = 0.0;
    for (var j = 0u; j < m; j++) { prevSum += x[0][j]; }
    let inv0 = 1.0 / (prevSum + 1e-10);
    for (var j = 0u; j < m; j++) { prevLog[j] = log(x[0][j] * inv0 + 1e-10); }
    var klSum = 0.0;
    for (var s = 1u; s < t; s++) {
      var curSum = 0.0;
      for (var j = 0u; j < m; j++) { curSum += x[s][j]; }
      let inv = 1.0 / (curSum + 1e-10);
      var kl = 0.0;
      for (var j = 0u; j < m; j++) {
        let p = x[s][j] * inv;
        let lp = log(p + 1e-10);
        kl += p * (lp - prevLog[j]);
        prevLog[j] = lp;
      }
      klSum += max(kl, 0.0);
    }
    r.pd = pdFromKlSum(klSum);
  }
  return r;
}

// ---- workgroup-memory path: values read from workgroup memory ----

fn rankOf(t: u32, j: u32, lid: u32) -> u32 {
  let x = e(t, j, lid);
  var r = 0u;
  for (var k = 0u; k < nM(); k++) {
    r += select(0u, 1u, ranksBefore(e(t, k, lid), x, k < j));
  }
  return r;
}

fn metricsGeneral(i: u32, lid: u32) -> Metrics {
  let t = nT();
  let m = nM();
  var r: Metrics;
  if (hasFlag(P, FLAG_EVB_MAXABS)) {
    var mx = 0.0;
    for (var j = 0u; j < m; j++) { mx = max(mx, abs(e(0u, j, lid) - e(t - 1u, j, lid))); }
    r.evb = evbFromMaxAbs(mx);
  } else {
    var ss = 0.0;
    for (var j = 0u; j < m; j++) {
      var mean = 0.0;
      for (var s = 0u; s < t; s++) { mean += e(s, j, lid); }
      mean /= f32(t);
      for (var s = 0u; s < t; s++) { let dv = e(s, j, lid) - mean; ss += dv * dv; }
    }
    r.evb = evbFromTrace(ss);
  }

  // Each row's ranks once (packed 4 per u32, 8 bits each), compared with the previous row's.
  var prev: array<u32, 8>;
  var cur: array<u32, 8>;
  var total = 0.0;
  for (var s = 0u; s < t; s++) {
    var penalty = 0.0;
    for (var w = 0u; w < 8u; w++) { cur[w] = 0u; }
    for (var j = 0u; j < m; j++) {
      let rk = rankOf(s, j, lid);
      cur[j >> 2u] |= rk << ((j & 3u) * 8u);
      if (s > 0u && ((prev[j >> 2u] >> ((j & 3u) * 8u)) & 0xffu) != rk) { penalty = max(penalty, crWeight(j)); }
    }
    total += penalty;
    prev = cur;
  }
  r.cr = crFromPenalties(total);

  if (hasFlag(P, FLAG_TS_EMB)) {
    r.ts = tsEmb[i];
  } else {
    var sum = 0.0;
    let invSqrtM = 1.0 / sqrt(f32(m));
    for (var s = 1u; s < t; s++) {
      var d2 = 0.0;
      for (var j = 0u; j < m; j++) { let dv = e(s, j, lid) - e(s - 1u, j, lid); d2 += dv * dv; }
      sum += tsStepProxy(d2, invSqrtM);
    }
    r.ts = tsFromDistances(sum);
  }

  if (hasFlag(P, FLAG_REWARDS)) {
    r.es = esFromRewards(i);
  } else {
    var mean = 0.0;
    for (var s = 0u; s < t; s++) { mean += e(s, P.confIndex, lid); }
    mean /= f32(t);
    var v = 0.0;
    for (var s = 0u; s < t; s++) { let dv = e(s, P.confIndex, lid) - mean; v += dv * dv; }
    v /= f32(t);
    r.es = esFromVariance(v);
  }

  if (hasFlag(P, FLAG_POLICY)) {
    r.pd = pdFromPolicy(i);
  } else {
    var klSum = 0.0;
    var prevSum = 0.0;
    for (var j = 0u; j < m; j++) { prevSum += e(0u, j, lid); }
    for (var s = 1u; s < t; s++) {
      var curSum = 0.0;
      for (var j = 0u; j < m; j++) { curSum += e(s, j, lid); }
      var kl = 0.0;
      for (var j = 0u; j < m; j++) {
        kl += klTerm(e(s, j, lid) / (curSum + 1e-10), e(s - 1u, j, lid) / (prevSum + 1e-10));
      }
      klSum += max(kl, 0.0);
      prevSum = curSum;
    }
    r.pd = pdFromKlSum(klSum);
  }
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let wgStart = flatWorkgroup(wgId, P.wgPerRow) * WG;
  if (wgStart >= P.n) { return; }
  let count = min(WG, P.n - wgStart);

  // Coalesced copy of this workgroup's values [vs, ve) of E; a 16-byte word may straddle the ends.
  // Components are unrolled by hand: a dynamic index into a vector can cost a trip to local memory.
  let vs = wgStart * TM;
  let ve = vs + count * TM;
  if (E_UNORM16) {
    let q1 = (ve + 7u) / 8u;
    for (var q = vs / 8u + lid; q < q1; q += WG) {
      let w = E[q];
      let v0 = q * 8u;
      stageValue(v0, vs, ve, unpack2x16unorm(w.x).x);
      stageValue(v0 + 1u, vs, ve, unpack2x16unorm(w.x).y);
      stageValue(v0 + 2u, vs, ve, unpack2x16unorm(w.y).x);
      stageValue(v0 + 3u, vs, ve, unpack2x16unorm(w.y).y);
      stageValue(v0 + 4u, vs, ve, unpack2x16unorm(w.z).x);
      stageValue(v0 + 5u, vs, ve, unpack2x16unorm(w.z).y);
      stageValue(v0 + 6u, vs, ve, unpack2x16unorm(w.w).x);
      stageValue(v0 + 7u, vs, ve, unpack2x16unorm(w.w).y);
    }
  } else {
    let q1 = (ve + 3u) / 4u;
    for (var q = vs / 4u + lid; q < q1; q += WG) {
      let w = bitcast<vec4<f32>>(E[q]);
      let v0 = q * 4u;
      stageValue(v0, vs, ve, w.x);
      stageValue(v0 + 1u, vs, ve, w.y);
      stageValue(v0 + 2u, vs, ve, w.z);
      stageValue(v0 + 3u, vs, ve, w.w);
    }
  }
  workgroupBarrier();

  if (lid < count) {
    var r: Metrics;
    if (SMALL) { r = metricsSmall(wgStart + lid, lid); } else { r = metricsGeneral(wgStart + lid, lid); }
    storeMetrics(wgStart + lid, r);
  }
}
