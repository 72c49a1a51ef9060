// Batched shrunk covariance C ([n][m][m], row-major) for the audit/downstream output, one
// invocation per trajectory. Targets: identity or scaled identity with a fixed lambda, or
// scikit-learn's ledoit_wolf (maximum-likelihood covariance, estimated shrinkage toward mu I).

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> E: array<u32>;
@group(0) @binding(2) var<storage, read_write> cov: array<f32>;

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
  var means: array<f32, 32>;
  for (var j = 0u; j < m; j++) {
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
      for (var r = 0u; r < t; r++) { s += (loadE(src + r * m + j) - means[j]) * (loadE(src + r * m + k) - means[k]); }
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
        for (var j = 0u; j < m; j++) { let x = loadE(src + r * m + j) - means[j]; rowSq += x * x; }
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
