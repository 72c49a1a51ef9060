// Per-trajectory metrics of the lane kernel (ecr_lanes.wgsl) with one lane per 4 consecutive
// components (m a multiple of 4; LP = m/4 rounded up to a power of two): lane h holds components
// 4h..4h+3 of every row in a vec4, loaded as one 16-byte word (8 bytes for unorm16). For a fixed
// step the lanes of a subgroup read whole 32-byte sectors, with a quarter of the load
// instructions of lanes_components.wgsl, and most per-component work stays inside a lane: for
// m = 8 a trajectory's 2 lanes exchange one vec4 per row for the ranks and one scalar per
// component sum, instead of 7 and 3 exchanges per lane. Padding lanes (4h >= m) hold 0 for sums
// and -1 (below every E value) for ranks.

// Components 4h..4h+3 of row s of chunk trajectory ic (4h < m).
fn loadRow(ic: u32, s: u32, h: u32) -> vec4<f32> {
  let v = (ic * T_FIXED + s) * M_FIXED + 4u * h;   // index of the first value: a multiple of 4
  if (E_UNORM16) {
    let w = E[v >> 3u];
    let half = select(w.xy, w.zw, (v & 4u) != 0u);
    return vec4<f32>(unpack2x16unorm(half.x), unpack2x16unorm(half.y));
  }
  return bitcast<vec4<f32>>(E[v >> 2u]);
}

// Per component c of v: 1 when y beats it for the rank (y larger, or equal and y's index lower).
fn beats(y: f32, v: vec4<f32>, lower: vec4<bool>) -> vec4<u32> {
  let yv = vec4<f32>(y);
  return select(vec4<u32>(0u), vec4<u32>(1u), (yv > v) | (lower & (yv == v)));
}

// rank(j) = #{k : E_k > E_j or (E_k == E_j and k < j)} for this lane's 4 components of row v.
fn rowRanks(v: vec4<f32>, h: u32) -> vec4<u32> {
  // Within the lane: component c' beats c on a tie exactly when c' < c.
  var rank = beats(v.x, v, vec4<bool>(false, true, true, true))
           + beats(v.y, v, vec4<bool>(false, false, true, true))
           + beats(v.z, v, vec4<bool>(false, false, false, true))
           + beats(v.w, v, vec4<bool>(false, false, false, false));
  for (var d = 1u; d < LP; d++) {
    let y = xorV4(v, d);
    let lower = vec4<bool>((h ^ d) < h);
    rank += beats(y.x, v, lower) + beats(y.y, v, lower) + beats(y.z, v, lower) + beats(y.w, v, lower);
  }
  return rank;
}

fn bits4(c: vec4<bool>) -> u32 {
  let b = select(vec4<u32>(0u), vec4<u32>(1u, 2u, 4u, 8u), c);
  return (b.x | b.y) | (b.z | b.w);
}

// The order of a row as pair bits: for components j < k, whether E_k > E_j (on a tie j ranks
// first). The ranks are a function of these bits and determine them, so a row's ranks differ from
// the previous row's exactly when some bit does, and with equal CR weights that is all CR needs.
// Lane h holds the 6 pairs among its own components and, for each other lane h ^ d, 8 of the 16
// pairs between the two: the lower lane those with the partner's components 0-1, the higher lane
// those with its own components 2-3, so the two lanes together hold every pair once (OR-ed
// across the segment afterwards). Bits: word x = d 1..4, word y = d 5..7 and the 6 inner pairs.
fn rowOrder(v: vec4<f32>, h: u32) -> vec2<u32> {
  var w = vec2<u32>(0u);
  for (var d = 1u; d < LP; d++) {
    let y = xorV4(v, d);
    let lower = h < (h ^ d);
    // The pair's larger index k on the left: partner's 0-1 (lower lane) or own 2-3 (higher lane).
    let kv = select(vec2<f32>(v.z, v.w), vec2<f32>(y.x, y.y), lower);
    let jv = select(y, v, lower);
    let b = bits4(vec4<f32>(kv.x) > jv) | (bits4(vec4<f32>(kv.y) > jv) << 4u);
    if (d <= 4u) { w.x |= b << (8u * (d - 1u)); } else { w.y |= b << (8u * (d - 5u)); }
  }
  let inner = bits4(vec4<bool>(v.y > v.x, v.z > v.x, v.w > v.x, v.z > v.y))
            | select(0u, 16u, v.w > v.y) | select(0u, 32u, v.w > v.z);
  w.y |= inner << 24u;
  return w;
}

fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

// Metrics of chunk trajectory ic as seen by its lane h (every lane returns the same values; lane
// sgLane of the subgroup).
fn laneMetrics(ic: u32, h: u32, sgLane: u32) -> Metrics {
  let t = T_FIXED;
  let m = M_FIXED;
  let real = m == 4u * LP || 4u * h < m;   // the first clause folds to true when no lane pads
  var x: array<vec4<f32>, MAXT>;
  let hc = min(h, m / 4u - 1u);   // padding lanes load a real row and drop it
  for (var s = 0u; s < t; s++) { x[s] = select(vec4<f32>(0.0), loadRow(ic, s, hc), real); }

  // Per-component sums of squared deviations: EVB's trace and ES's variance of component confIndex.
  let invT = 1.0 / f32(t);
  var mean = vec4<f32>(0.0);
  for (var s = 0u; s < t; s++) { mean += x[s]; }
  mean *= invT;
  var ss = vec4<f32>(0.0);
  for (var s = 0u; s < t; s++) { let dv = x[s] - mean; ss += dv * dv; }

  var r: Metrics;
  if (hasFlag(P, FLAG_EVB_MAXABS)) {
    let dv = abs(x[0] - x[t - 1u]);
    r.evb = evbFromMaxAbs(maxSeg(max(max(dv.x, dv.y), max(dv.z, dv.w))));
  } else {
    r.evb = evbFromTrace(sumSeg(hsum(ss)));
  }

  var changedRows = 0u;
  var crTotal = 0.0;
  if (CR_UNIFORM) {
    // Any rank changed at step s: some pair changed order (rowOrder).
    var prevOrder = vec2<u32>(0u);
    for (var s = 0u; s < t; s++) {
      let order = rowOrder(select(vec4<f32>(-1.0), x[s], real), h);
      if (s > 0u && any(order != prevOrder)) { changedRows |= 1u << s; }
      prevOrder = order;
    }
    crTotal = f32(countOneBits(orSeg(changedRows))) * crWeight(0u);
  } else {
    // Per-component weights need each component's rank: packed 8 bits each (ranks < 32), a
    // changed byte is a changed rank, and a step's penalty is the largest such weight.
    var prevWord = 0u;
    for (var s = 0u; s < t; s++) {
      let rk = rowRanks(select(vec4<f32>(-1.0), x[s], real), h);
      let word = rk.x | (rk.y << 8u) | (rk.z << 16u) | (rk.w << 24u);
      if (s > 0u) {
        let diff = select(0u, word ^ prevWord, real);
        var penalty = 0.0;
        for (var c = 0u; c < 4u; c++) {
          if (((diff >> (8u * c)) & 0xffu) != 0u) { penalty = max(penalty, crWeight(4u * h + c)); }
        }
        crTotal += maxSeg(penalty);
      }
      prevWord = word;
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
      sum += tsStepProxy(sumSeg(dot(dv, dv)), invSqrtM);
    }
    r.ts = tsFromDistances(sum);
  }

  let segLane0 = sgLane - h;
  if (hasFlag(P, FLAG_REWARDS)) {
    var esLocal = 0.0;
    if (h == 0u) { esLocal = esFromRewards(ic); }
    r.es = readLaneF(esLocal, segLane0);
  } else {
    // Component confIndex lives in lane confIndex / 4; a one-hot dot picks it without a dynamic
    // index into the vector.
    let pick = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(P.confIndex & 3u));
    let v = dot(ss, pick);
    r.es = readLaneF(esFromVariance(v / f32(t)), segLane0 + P.confIndex / 4u);
  }

  if (hasFlag(P, FLAG_POLICY)) {
    var pdLocal = 0.0;
    if (h == 0u) { pdLocal = pdFromPolicy(ic); }
    r.pd = readLaneF(pdLocal, segLane0);
  } else {
    // klTerm in another form, KL(p_s || p_{s-1}) = sum_j p * (log(p + eps) - log(q + eps)): each
    // component's log once per step, in base 2 (the hardware's), scaled by ln 2 once at the end
    // (max(., 0) commutes with that positive scale). Padding lanes have p = 0, so they add 0.
    var prevLog = log2(x[0] * (1.0 / (sumSeg(hsum(x[0])) + 1e-10)) + 1e-10);
    var klSum = 0.0;
    for (var s = 1u; s < t; s++) {
      let p = x[s] * (1.0 / (sumSeg(hsum(x[s])) + 1e-10));
      let lp = log2(p + 1e-10);
      klSum += max(sumSeg(dot(p, lp - prevLog)), 0.0);
      prevLog = lp;
    }
    klSum *= 0.6931471805599453;
    r.pd = pdFromKlSum(klSum);
  }
  return r;
}
