// Batched shrunk covariance C ([n][m][m], row-major) for the audit/downstream output, one
// invocation per trajectory. Targets: identity or scaled identity with a fixed lambda, or
// scikit-learn's ledoit_wolf (maximum-likelihood covariance, estimated shrinkage toward mu I).
// Any m: the component means are kept in registers up to m = 32 and recomputed where used beyond
// (m^2 T work either way; only on request).

override WG: u32 = 64u;
const MEANS_KEPT: u32 = 32u;
var<private> means: array<f32, MEANS_KEPT>;

fn columnMean(src: u32, j: u32) -> f32 {
  var s = 0.0;
  for (var r = 0u; r < P.t; r++) { s += loadE(src + r * P.m + j); }
  return s / f32(P.t);
}
fn meanOf(src: u32, j: u32) -> f32 {
  if (P.m <= MEANS_KEPT) { return means[j]; }
  return columnMean(src, j);
}

fn loadE(idx: u32) -> f32 {
  if (E_UNORM16) {
    let pair = unpack2x16unorm(E[idx >> 1u]);
    return select(pair.x, pair.y, (idx & 1u) == 1u);
  }
  return bitcast<f32>(E[idx]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatWorkgroup(wgId, P.wgPerRow) * WG + lid;
  if (i >= P.n) { return; }
  let t = P.t;
  let m = P.m;
  let src = i * t * m;
  let dst = i * m * m;
  for (var j = 0u; j < min(m, MEANS_KEPT); j++) {
    var s = 0.0;
    for (var r = 0u; r < t; r++) { s += loadE(src + r * m + j); }
    means[j] = s / f32(t);
  }
  let lw = hasFlag(P, FLAG_SHRINK_LW);
  let divisor = select(f32(t - 1u), f32(t), lw);
  // Raw (co)variances first; the shrinkage needs their trace (and, for Ledoit-Wolf, their squares).
  var trace = 0.0;
  var frob2 = 0.0;
  for (var j = 0u; j < m; j++) {
    for (var k = j; k < m; k++) {
      var s = 0.0;
      let mj = meanOf(src, j);
      let mk = meanOf(src, k);
      for (var r = 0u; r < t; r++) { s += (loadE(src + r * m + j) - mj) * (loadE(src + r * m + k) - mk); }
      s /= divisor;
      cov[dst + j * m + k] = s;
      cov[dst + k * m + j] = s;
      if (j == k) { trace += s; frob2 += s * s; } else { frob2 += 2.0 * s * s; }
    }
  }
  var shrink = P.lambda;
  var targetScale = 1.0;
  if (hasFlag(P, FLAG_SHRINK_SCALED)) { targetScale = trace / f32(m); }
  if (lw) {
    let mu = trace / f32(m);
    targetScale = mu;
    shrink = 0.0;
    if (m > 1u) {
      // beta_ = sum_t (sum_j x_tj^2)^2 over centred rows; delta_ = ||S'||_F^2 (sklearn's names).
      var betaRaw = 0.0;
      for (var r = 0u; r < t; r++) {
        var rowSq = 0.0;
        for (var j = 0u; j < m; j++) { let x = loadE(src + r * m + j) - meanOf(src, j); rowSq += x * x; }
        betaRaw += rowSq * rowSq;
      }
      let tf = f32(t);
      let mf = f32(m);
      var beta = (betaRaw / tf - frob2) / (mf * tf);
      let delta = (frob2 - 2.0 * mu * trace + mf * mu * mu) / mf;
      beta = min(beta, delta);
      if (beta != 0.0 && delta > 0.0) { shrink = beta / delta; }
    }
  }
  for (var j = 0u; j < m; j++) {
    for (var k = 0u; k < m; k++) {
      let idx = dst + j * m + k;
      cov[idx] = (1.0 - shrink) * cov[idx] + select(0.0, shrink * targetScale, j == k);
    }
  }
}
