// One function per metric formula of ECR-SPEC section 3, shared by every kernel and layout
// (staged.wgsl, lanes_*.wgsl, general.wgsl, ts_embeddings.wgsl). A layout only decides where the
// per-trajectory statistics come from (registers, workgroup memory, lane exchanges, a workgroup
// per trajectory) and reduces them; the formula that turns them into a metric is here. The CPU
// counterparts are named in docs/ECR-SPEC.md section 8. Where a layout computes a statistic in
// another algebraic form, it says why next to that code (CR's pair orders in lanes_rows.wgsl,
// the log-per-row form of KL in the register path and the lanes, base-2 logs in the rows layout).

// T and m as constants (nonzero) unroll loops; 0 reads them from Params.
override T_FIXED: u32 = 0u;
override M_FIXED: u32 = 0u;

fn nT() -> u32 { if (T_FIXED != 0u) { return T_FIXED; } return P.t; }
fn nM() -> u32 { if (M_FIXED != 0u) { return M_FIXED; } return P.m; }

struct Metrics { evb: f32, cr: f32, ts: f32, es: f32, pd: f32 }

// EVB, trace mode, from ss = sum over components of the squared deviations from the component
// means. Only the trace of C is needed: tr(C) = (1-lambda) tr(S) + lambda tr(Target), and
// Ledoit-Wolf keeps the trace of its maximum-likelihood covariance.
fn evbFromTrace(ss: f32) -> f32 {
  let t = nT();
  let m = nM();
  if (hasFlag(P, FLAG_SHRINK_LW)) { return min(1.0, ss / f32(t) / f32(m)); }
  let trS = ss / f32(t - 1u);
  let trTarget = select(f32(m), trS, hasFlag(P, FLAG_SHRINK_SCALED));
  return min(1.0, ((1.0 - P.lambda) * trS + P.lambda * trTarget) / f32(m));
}

// EVB, max-abs-change mode, from the largest |E[0][j] - E[H][j]|.
fn evbFromMaxAbs(mx: f32) -> f32 { return min(1.0, mx); }

// CR from the sum over steps of each step's penalty (the largest weight among components whose
// rank changed; 0 when none did).
fn crFromPenalties(total: f32) -> f32 { return total / f32(nT() - 1u); }

// CR's rank order: component k ranks before component j in a row when its value is larger, or
// equal with the lower index (kLower: k < j).
fn ranksBefore(y: f32, x: f32, kLower: bool) -> bool { return y > x || (y == x && kLower); }

// TS, one step without embeddings: min(1, ||E[k] - E[k-1]|| / sqrt(m)) from the squared norm.
fn tsStepProxy(d2: f32, invSqrtM: f32) -> f32 { return min(1.0, sqrt(d2) * invSqrtM); }

// TS, one step with embeddings: 1 - cos, clamped, from the dot product and squared norms; 1 when
// either vector is (nearly) zero.
fn tsStepEmbeddings(dotAB: f32, na2: f32, nb2: f32) -> f32 {
  let na = sqrt(na2);
  let nb = sqrt(nb2);
  if (na >= 1e-12 && nb >= 1e-12) { return clamp(1.0 - dotAB / (na * nb), 0.0, 1.0); }
  return 1.0;
}

fn tsFromDistances(sum: f32) -> f32 { return 1.0 - sum / f32(nT() - 1u); }

// ES from v, the population variance (divide by T) of the reward differences or of E[.][confIndex].
fn esFromVariance(v: f32) -> f32 { return clamp(1.0 - v / P.vmax, 0.0, 1.0); }

// One term of KL(p_k || p_{k-1}) for normalized p (this step) and q (the previous step).
fn klTerm(p: f32, q: f32) -> f32 { return p * log((p + 1e-10) / (q + 1e-10)); }

// PD from the sum over steps of max(KL_k, 0).
fn pdFromKlSum(klSum: f32) -> f32 { return min(1.0, klSum / f32(nT() - 1u) / P.dmax); }

fn cciOf(r: Metrics) -> f32 {
  let w0 = P.w[0];
  return w0.x * (1.0 - r.evb) + w0.y * (1.0 - r.cr) + w0.z * r.ts + w0.w * r.es + P.w[1].x * (1.0 - r.pd);
}

