// The general kernel: every shape the CPU backends accept (any T >= 2, any m, d, A), for the
// shapes beyond the fast paths (T > 16, m > 32, or a trajectory too large for workgroup staging;
// programs/general.ts). One workgroup of GWG invocations per trajectory, reading E (and the
// optional inputs) from storage buffers, so no size is limited by registers or workgroup memory:
//   - per component (invocation c, c + GWG, ...): EVB's squared deviations and largest change, and
//     ES's variance of component confIndex;
//   - per step (invocation s, s + GWG, ...): TS's step distance (from E or the embeddings) and
//     PD's KL term (from E or the policy);
//   - CR per (step, component) item, in blocks of GWG steps: item (s, c) is the penalty of
//     component c at step s (equal weights: whether some pair (k, c), k < c, changed order, which
//     happens exactly when some rank changed; per-component weights: w_c when c's rank changed),
//     folded into the step's slot with an atomic max (penalties are >= 0, so their f32 bits order
//     as u32), then each step's penalty is added by the invocation that owns the slot.
// The partial sums meet in one workgroup tree reduction at the end; invocation 0 stores.

override GWG: u32 = 64u;   // invocations per workgroup (= steps per CR block)
// All CR weights equal: a step's penalty is crWeights[0] when any pair changed order.
override CR_UNIFORM: bool = true;

// A trajectory of at most TILE values is first copied into workgroup memory (coalesced), and every
// later read of E comes from there: CR reads each value O(m) times.
override TILE: u32 = 2048u;
var<workgroup> tile: array<f32, TILE>;
var<private> tileBase: u32;
var<private> tiled: bool;

var<workgroup> stepPenalty: array<atomic<u32>, GWG>;
var<workgroup> redSum: array<vec4<f32>, GWG>;   // (EVB ss, ES variance, TS distances, PD KL)
var<workgroup> redMix: array<vec2<f32>, GWG>;   // (CR penalties: sum, EVB largest change: max)

fn loadStored(v: u32) -> f32 {
  if (E_UNORM16) {
    let u = unpack2x16unorm(E[v >> 1u]);
    return select(u.x, u.y, (v & 1u) == 1u);
  }
  return bitcast<f32>(E[v]);
}

// Value v of the chunk's E (v within this workgroup's trajectory).
fn loadE(v: u32) -> f32 {
  if (tiled) { return tile[v - tileBase]; }
  return loadStored(v);
}

// Penalty of component c at step s of the trajectory starting at value `base`.
fn crItem(base: u32, s: u32, c: u32) -> f32 {
  let m = P.m;
  let cur = base + s * m;
  let prev = cur - m;
  let xc = loadE(cur + c);
  let xp = loadE(prev + c);
  if (CR_UNIFORM) {
    for (var k = 0u; k < c; k++) {
      if (ranksBefore(loadE(cur + k), xc, true) != ranksBefore(loadE(prev + k), xp, true)) { return crWeights[0]; }
    }
    return 0.0;
  }
  var rankCur = 0u;
  var rankPrev = 0u;
  for (var k = 0u; k < m; k++) {
    rankCur += select(0u, 1u, ranksBefore(loadE(cur + k), xc, k < c));
    rankPrev += select(0u, 1u, ranksBefore(loadE(prev + k), xp, k < c));
  }
  return select(0.0, crWeights[c], rankCur != rankPrev);
}

@compute @workgroup_size(GWG)
fn main(@builtin(workgroup_id) wgId: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatWorkgroup(wgId, P.wgPerRow);
  if (i >= P.n) { return; }   // workgroup-uniform: one workgroup per trajectory
  let t = P.t;
  let m = P.m;
  let base = i * t * m;
  tiled = t * m <= TILE;   // uniform: from Params
  tileBase = base;
  if (tiled) {
    for (var k = lid; k < t * m; k += GWG) { tile[k] = loadStored(base + k); }
  }
  workgroupBarrier();

  var ss = 0.0;
  var mx = 0.0;
  var esVar = 0.0;
  for (var c = lid; c < m; c += GWG) {
    var mean = 0.0;
    for (var s = 0u; s < t; s++) { mean += loadE(base + s * m + c); }
    mean /= f32(t);
    var sc = 0.0;
    for (var s = 0u; s < t; s++) { let dv = loadE(base + s * m + c) - mean; sc += dv * dv; }
    ss += sc;
    mx = max(mx, abs(loadE(base + c) - loadE(base + (t - 1u) * m + c)));
    if (c == P.confIndex) { esVar = sc / f32(t); }
  }

  var tsSum = 0.0;
  var klSum = 0.0;
  let invSqrtM = 1.0 / sqrt(f32(m));
  for (var s = 1u + lid; s < t; s += GWG) {
    if (hasFlag(P, FLAG_TS_EMB)) {
      let d = P.d;
      let cur = (i * t + s) * d;
      var dotAB = 0.0;
      var na2 = 0.0;
      var nb2 = 0.0;
      for (var k = 0u; k < d; k++) {
        let a = embeddings[cur + k];
        let b = embeddings[cur - d + k];
        dotAB += a * b;
        na2 += a * a;
        nb2 += b * b;
      }
      tsSum += tsStepEmbeddings(dotAB, na2, nb2);
    } else {
      var d2 = 0.0;
      for (var c = 0u; c < m; c++) { let dv = loadE(base + s * m + c) - loadE(base + (s - 1u) * m + c); d2 += dv * dv; }
      tsSum += tsStepProxy(d2, invSqrtM);
    }
    if (hasFlag(P, FLAG_POLICY)) {
      let a = P.a;
      klSum += max(klOfPolicyRows((i * t + s) * a, (i * t + s - 1u) * a, a), 0.0);
    } else {
      var curSum = 0.0;
      var prevSum = 0.0;
      for (var c = 0u; c < m; c++) { curSum += loadE(base + s * m + c); prevSum += loadE(base + (s - 1u) * m + c); }
      var kl = 0.0;
      for (var c = 0u; c < m; c++) {
        kl += klTerm(loadE(base + s * m + c) / (curSum + 1e-10), loadE(base + (s - 1u) * m + c) / (prevSum + 1e-10));
      }
      klSum += max(kl, 0.0);
    }
  }

  var crSum = 0.0;
  for (var s0 = 1u; s0 < t; s0 += GWG) {
    let steps = min(GWG, t - s0);
    atomicStore(&stepPenalty[lid], 0u);
    workgroupBarrier();
    for (var item = lid; item < steps * m; item += GWG) {
      let p = crItem(base, s0 + item / m, item % m);
      if (p > 0.0) { atomicMax(&stepPenalty[item / m], bitcast<u32>(p)); }
    }
    workgroupBarrier();
    if (lid < steps) { crSum += bitcast<f32>(atomicLoad(&stepPenalty[lid])); }
    workgroupBarrier();
  }

  redSum[lid] = vec4<f32>(ss, esVar, tsSum, klSum);
  redMix[lid] = vec2<f32>(crSum, mx);
  workgroupBarrier();
  for (var o = GWG / 2u; o > 0u; o >>= 1u) {
    if (lid < o) {
      redSum[lid] += redSum[lid + o];
      redMix[lid] = vec2<f32>(redMix[lid].x + redMix[lid + o].x, max(redMix[lid].y, redMix[lid + o].y));
    }
    workgroupBarrier();
  }
  if (lid != 0u) { return; }
  let sums = redSum[0];
  var r: Metrics;
  if (hasFlag(P, FLAG_EVB_MAXABS)) { r.evb = evbFromMaxAbs(redMix[0].y); } else { r.evb = evbFromTrace(sums.x); }
  r.cr = crFromPenalties(redMix[0].x);
  r.ts = tsFromDistances(sums.z);
  if (hasFlag(P, FLAG_REWARDS)) { r.es = esFromRewards(i); } else { r.es = esFromVariance(sums.y); }
  r.pd = pdFromKlSum(sums.w);
  storeMetrics(i, r);
}
