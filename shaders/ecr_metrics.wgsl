// Fused ECR metrics: EVB, CR, TS (E fallback or precomputed from embeddings), ES, PD, CCI, and
// the first pass of per-group selection. One invocation per trajectory; the workgroup first copies
// its WG trajectories of E into workgroup memory with coalesced loads, transposed so that the
// per-trajectory reads that follow hit distinct banks.

override WG: u32 = 128u;       // trajectories (and invocations) per workgroup
override TM: u32 = 40u;         // t * m of the batch; sizes the staging array
// For small shapes the host also fixes T and m as constants, so loops over steps and components
// unroll and the per-row rank arrays stay in registers (pipelines are keyed by shape, never data).
// 0 means "read them from the uniforms" (large shapes, where unrolling only bloats the kernel).
override T_FIXED: u32 = 0u;
override M_FIXED: u32 = 0u;
override LANE_STRIDE: u32 = WG + 1u; // padded so the transposed staging writes spread over banks

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> E: array<u32>;
@group(0) @binding(2) var<storage, read> policy: array<f32>;
@group(0) @binding(3) var<storage, read> rewardDiff: array<f32>;   // realized - expected, [n][t]
@group(0) @binding(4) var<storage, read> tsEmb: array<f32>;        // TS from embeddings, [n]
@group(0) @binding(5) var<storage, read> baseKey: array<vec2<u32>>; // f64 order keys (hi, lo); (0,0) = use CCI
@group(0) @binding(6) var<storage, read> groups: array<u32>;
@group(0) @binding(7) var<storage, read_write> outMetrics: array<f32>; // [n][6]: EVB CR TS ES PD CCI
@group(0) @binding(8) var<storage, read_write> selRec: array<vec4<u32>>; // [n]: group, admHi, admLo, anyKey
@group(0) @binding(9) var<storage, read_write> groupState: array<GroupState>;

override STAGE: u32 = (WG + 1u) * TM;
var<workgroup> stage: array<f32, STAGE>;
var<workgroup> wgGroup: u32;
var<workgroup> wgAdmHi: atomic<u32>;
var<workgroup> wgAnyKey: atomic<u32>;

fn nT() -> u32 { if (T_FIXED != 0u) { return T_FIXED; } return P.t; }
fn nM() -> u32 { if (M_FIXED != 0u) { return M_FIXED; } return P.m; }

fn loadE(idx: u32) -> f32 {
  if (E_UNORM16) {
    let pair = unpack2x16unorm(E[idx >> 1u]);
    return select(pair.x, pair.y, (idx & 1u) == 1u);
  }
  return bitcast<f32>(E[idx]);
}

fn e(t: u32, j: u32, lid: u32) -> f32 { return stage[(t * nM() + j) * LANE_STRIDE + lid]; }

// Rank of component j in row t: components sorted largest first, ties to the lower index.
fn rankOf(t: u32, j: u32, lid: u32) -> u32 {
  let x = e(t, j, lid);
  var r = 0u;
  for (var k = 0u; k < nM(); k++) {
    let y = e(t, k, lid);
    r += select(0u, 1u, y > x || (y == x && k < j));
  }
  return r;
}

fn crWeight(j: u32) -> f32 { return P.crW[j >> 2u][j & 3u]; }

fn evbOf(lid: u32) -> f32 {
  let t = nT();
  let m = nM();
  if (hasFlag(P, FLAG_EVB_MAXABS)) {
    var mx = 0.0;
    for (var j = 0u; j < m; j++) { mx = max(mx, abs(e(0u, j, lid) - e(t - 1u, j, lid))); }
    return min(1.0, mx);
  }
  // Only the trace of C is needed: tr(C) = (1-lambda) tr(S) + lambda tr(Target), and Ledoit-Wolf
  // keeps the trace of its maximum-likelihood covariance.
  var ss = 0.0;
  for (var j = 0u; j < m; j++) {
    var mean = 0.0;
    for (var s = 0u; s < t; s++) { mean += e(s, j, lid); }
    mean /= f32(t);
    for (var s = 0u; s < t; s++) { let dv = e(s, j, lid) - mean; ss += dv * dv; }
  }
  if (hasFlag(P, FLAG_SHRINK_LW)) { return min(1.0, ss / f32(t) / f32(m)); }
  let trS = ss / f32(t - 1u);
  let trTarget = select(f32(m), trS, hasFlag(P, FLAG_SHRINK_SCALED));
  return min(1.0, ((1.0 - P.lambda) * trS + P.lambda * trTarget) / f32(m));
}

fn crOf(lid: u32) -> f32 {
  // Each row's ranks are computed once and kept (packed 4 per u32) for the next row's comparison.
  var prev: array<u32, 8>;
  var cur: array<u32, 8>;
  var total = 0.0;
  for (var s = 0u; s < nT(); s++) {
    var penalty = 0.0;
    for (var w = 0u; w < 8u; w++) { cur[w] = 0u; }
    for (var j = 0u; j < nM(); j++) {
      let r = rankOf(s, j, lid);
      cur[j >> 2u] |= r << ((j & 3u) * 8u);
      if (s > 0u && ((prev[j >> 2u] >> ((j & 3u) * 8u)) & 0xffu) != r) { penalty = max(penalty, crWeight(j)); }
    }
    total += penalty;
    prev = cur;
  }
  return total / f32(nT() - 1u);
}

fn tsFromE(lid: u32) -> f32 {
  var sum = 0.0;
  let invSqrtM = 1.0 / sqrt(f32(nM()));
  for (var s = 1u; s < nT(); s++) {
    var d2 = 0.0;
    for (var j = 0u; j < nM(); j++) { let dv = e(s, j, lid) - e(s - 1u, j, lid); d2 += dv * dv; }
    sum += min(1.0, sqrt(d2) * invSqrtM);
  }
  return 1.0 - sum / f32(nT() - 1u);
}

fn esSeries(i: u32, s: u32, lid: u32) -> f32 {
  if (hasFlag(P, FLAG_REWARDS)) { return rewardDiff[i * nT() + s]; }
  return e(s, P.confIndex, lid);
}

fn esOf(i: u32, lid: u32) -> f32 {
  var mean = 0.0;
  for (var s = 0u; s < nT(); s++) { mean += esSeries(i, s, lid); }
  mean /= f32(nT());
  var v = 0.0;
  for (var s = 0u; s < nT(); s++) { let dv = esSeries(i, s, lid) - mean; v += dv * dv; }
  v /= f32(nT());
  return clamp(1.0 - v / P.vmax, 0.0, 1.0);
}

fn pdFromE(lid: u32) -> f32 {
  var klSum = 0.0;
  var prevSum = 0.0;
  for (var j = 0u; j < nM(); j++) { prevSum += e(0u, j, lid); }
  for (var s = 1u; s < nT(); s++) {
    var curSum = 0.0;
    for (var j = 0u; j < nM(); j++) { curSum += e(s, j, lid); }
    var kl = 0.0;
    for (var j = 0u; j < nM(); j++) {
      let p = e(s, j, lid) / (curSum + 1e-10);
      let q = e(s - 1u, j, lid) / (prevSum + 1e-10);
      kl += p * log((p + 1e-10) / (q + 1e-10));
    }
    klSum += max(kl, 0.0);
    prevSum = curSum;
  }
  return min(1.0, klSum / f32(nT() - 1u) / P.dmax);
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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let wgStart = flatWorkgroup(wgId, P.wgPerRow) * WG;
  if (wgStart >= P.n) { return; }
  let count = min(WG, P.n - wgStart);
  let tm = TM;
  let src = wgStart * tm;
  for (var k = lid; k < count * tm; k += WG) {
    stage[(k % tm) * LANE_STRIDE + k / tm] = loadE(src + k);
  }
  let selecting = hasFlag(P, FLAG_SELECT);
  if (lid == 0u) {
    wgGroup = select(0u, groups[wgStart], hasFlag(P, FLAG_GROUPS));
    atomicStore(&wgAdmHi, 0u);
    atomicStore(&wgAnyKey, 0u);
  }
  workgroupBarrier();

  let i = wgStart + lid;
  if (lid < count) {
    let evb = evbOf(lid);
    let cr = crOf(lid);
    // if/else rather than select(): select evaluates both sides.
    var ts: f32;
    if (hasFlag(P, FLAG_TS_EMB)) { ts = tsEmb[i]; } else { ts = tsFromE(lid); }
    let es = esOf(i, lid);
    var pd: f32;
    if (hasFlag(P, FLAG_POLICY)) { pd = pdFromPolicy(i); } else { pd = pdFromE(lid); }
    let w0 = P.w[0];
    let cci = w0.x * (1.0 - evb) + w0.y * (1.0 - cr) + w0.z * ts + w0.w * es + P.w[1].x * (1.0 - pd);
    let o = i * 6u;
    outMetrics[o] = evb;
    outMetrics[o + 1u] = cr;
    outMetrics[o + 2u] = ts;
    outMetrics[o + 3u] = es;
    outMetrics[o + 4u] = pd;
    outMetrics[o + 5u] = cci;
    if (selecting) {
      let g = select(0u, groups[i], hasFlag(P, FLAG_GROUPS));
      var adm = vec2<u32>(0u, 0u);
      if (cci >= P.tau) {
        adm = f32OrderKey64(cci);
        if (hasFlag(P, FLAG_BASE)) {
          let bk = baseKey[i];
          if (bk.x != 0u || bk.y != 0u) { adm = bk; }
        }
      }
      let anyKey = f32OrderKey(cci);
      selRec[i] = vec4<u32>(g, adm.x, adm.y, anyKey);
      // Runs of one group (the common layout) meet in workgroup atomics, one global atomic each.
      if (g == wgGroup) {
        atomicMax(&wgAdmHi, adm.x);
        atomicMax(&wgAnyKey, anyKey);
      } else {
        atomicMax(&groupState[g].admHi, adm.x);
        atomicMax(&groupState[g].anyKey, anyKey);
      }
    }
  }
  workgroupBarrier();
  if (selecting && lid == 0u) {
    atomicMax(&groupState[wgGroup].admHi, atomicLoad(&wgAdmHi));
    atomicMax(&groupState[wgGroup].anyKey, atomicLoad(&wgAnyKey));
  }
}
