// Fused ECR metrics with one lane per component: LP lanes (m rounded up to a power of two) hold
// one trajectory, lane j reading E[i][s][j] for every step s. For a fixed step the lanes of a
// subgroup read whole 32-byte sectors of consecutive trajectories, so loads are coalesced with
// no staging in workgroup memory. Per-component work is lane-local; sums over components,
// ranks and "any rank changed" go through XOR butterflies within the segment (xorF, xorU from
// lanes_subgroup.wgsl or lanes_emulated.wgsl). Padding lanes (j >= m) hold neutral values: 0 for
// sums, -1 (below every E value, and only tied with later padding lanes) for ranks.
//
// Every exchange is executed by every lane (dead trajectories read a clamped index and write
// nothing), which keeps them in uniform control flow. Outputs, admissibility words and the
// selection records have the layout of ecr_metrics.wgsl; selection runs are reduced across the
// whole workgroup (see the end of lanesMain), and with FLAG_CONTIGUOUS a run that is a whole
// group writes its winner directly, so only runs at workgroup edges leave records.

override WG: u32 = 256u;   // invocations per workgroup; WG / LP trajectories (a multiple of 4)
override LP: u32 = 8u;     // lanes per trajectory: a power of two >= m, <= the subgroup size
const MAXT: u32 = 16u;
// Selection tail: 0 = the first trajectory of each run folds it serially; 1 = a log-step
// segmented reduction over the workgroup's trajectories (see selectionScan).
override SEL_TAIL: u32 = 1u;
// Load each trajectory's group and base key, and the groups just outside the workgroup, at kernel
// start, so their latency overlaps the E loads instead of following the last barrier.
override SEL_PREFETCH: bool = true;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> E: array<u32>;            // f32 bits, or 2 unorm16 per word
@group(0) @binding(2) var<storage, read> policy: array<f32>;
@group(0) @binding(3) var<storage, read> rewardDiff: array<f32>;
@group(0) @binding(4) var<storage, read> tsEmb: array<f32>;
@group(0) @binding(5) var<storage, read> baseKey: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read> groups: array<u32>;
@group(0) @binding(7) var<storage, read_write> outWords: array<u32>;
@group(0) @binding(8) var<storage, read_write> selRec: array<SelRec>;
@group(0) @binding(9) var<storage, read_write> groupState: array<GroupState>;

var<workgroup> admWords: array<atomic<u32>, 64>;   // (WG / LP) / 4 <= 64 words
// Selection candidates per trajectory slot of the workgroup (group, admissible key, CCI key).
var<workgroup> runG: array<u32, WG / LP>;
var<workgroup> runHi: array<u32, WG / LP>;
var<workgroup> runLo: array<u32, WG / LP>;
var<workgroup> runKey: array<u32, WG / LP>;

// Segmented reduction (SEL_TAIL = 1): two buffers of candidates, and per slot the last slot its
// partial reduction covers, with SCAN_CLOSED set once that range reaches the end of its run.
struct SelCand { hi: u32, lo: u32, aIdx: u32, key: u32, kIdx: u32 }
var<workgroup> scanCand: array<SelCand, 2u * (WG / LP)>;
var<workgroup> scanEnd: array<u32, 2u * (WG / LP)>;
const SCAN_CLOSED: u32 = 0x80000000u;

// Larger admissible key, then lower index; larger CCI key, then lower index. Both are total
// orders on (key, index), so the reduction may combine in any order and still equals the host's.
fn combineCand(a: SelCand, b: SelCand) -> SelCand {
  var r = a;
  if (admBeats(b.hi, b.lo, b.aIdx, a.hi, a.lo, a.aIdx)) { r.hi = b.hi; r.lo = b.lo; r.aIdx = b.aIdx; }
  if (b.key > a.key || (b.key == a.key && b.kIdx < a.kIdx)) { r.key = b.key; r.kIdx = b.kIdx; }
  return r;
}

// Slot k before any combination: covers itself, closed when k is the last slot of its run.
fn scanEndInitial(k: u32, count: u32) -> u32 {
  let closed = k + 1u >= count || runG[k + 1u] != runG[k];
  return k | select(0u, SCAN_CLOSED, closed);
}

// Hillis-Steele suffix reduction within runs over slots 0..count-1 (candidates in scanCand[0..]):
// after the step with offset d, slot k holds the reduction of [k, k + 2d - 1] cut at its run's end.
// A slot still open after covering [k, k + d - 1] has its run continue at k + d, so it absorbs
// that slot's range. Thread lid works on slot lid; the last step is kept in registers, so thread
// k returns the whole run's reduction when k heads a run. Every invocation must call this
// (barriers); the result is meaningful for lid < count only.
struct ScanResult { c: SelCand, last: u32 }
fn selectionScan(lid: u32, count: u32) -> ScanResult {
  let perWg = WG / LP;
  var src = 0u;
  var c: SelCand;
  var e = 0u;
  for (var d = 1u; d < perWg; d <<= 1u) {
    if (lid < count) {
      c = scanCand[src + lid];
      e = select(scanEnd[src + lid], scanEndInitial(lid, count), d == 1u);
      if ((e & SCAN_CLOSED) == 0u) {   // open, so lid + d < count and belongs to the same run
        let k2 = lid + d;
        c = combineCand(c, scanCand[src + k2]);
        e = select(scanEnd[src + k2], scanEndInitial(k2, count), d == 1u);
      }
    }
    if (2u * d < perWg) {
      let dst = perWg - src;
      if (lid < count) { scanCand[dst + lid] = c; scanEnd[dst + lid] = e; }
      src = dst;
      workgroupBarrier();
    }
  }
  return ScanResult(c, e & ~SCAN_CLOSED);
}

fn groupAt(k: u32) -> u32 {
  if (hasFlag(P, FLAG_GROUPS)) { return groups[k]; }
  return 0u;
}

fn loadE(v: u32) -> f32 {
  if (E_UNORM16) {
    let u = unpack2x16unorm(E[v >> 1u]);
    return select(u.x, u.y, (v & 1u) == 1u);
  }
  return bitcast<f32>(E[v]);
}

fn sumSeg(x: f32) -> f32 {
  var s = x;
  for (var o = 1u; o < LP; o <<= 1u) { s += xorF(s, o); }
  return s;
}
fn maxSeg(x: f32) -> f32 {
  var s = x;
  for (var o = 1u; o < LP; o <<= 1u) { s = max(s, xorF(s, o)); }
  return s;
}
fn orSeg(x: u32) -> u32 {
  var s = x;
  for (var o = 1u; o < LP; o <<= 1u) { s |= xorU(s, o); }
  return s;
}

// All CR weights of the m components equal (the default): a step's penalty is that weight
// whenever any rank changed, so one OR of the per-lane change masks replaces a max per step.
fn crWeightsUniform(m: u32) -> bool {
  let w0 = crWeight(0u);
  var same = true;
  for (var k = 1u; k < m; k++) { same = same && crWeight(k) == w0; }
  return same;
}

fn lanesMain(wgId: vec3<u32>, lid: u32, sgLane: u32) {
  let perWg = WG / LP;
  let wgIndex = flatWorkgroup(wgId, P.wgPerRow);
  let wgStart = wgIndex * perWg;
  if (wgStart >= P.n) { return; }   // workgroup-uniform
  let t = T_FIXED;
  let m = M_FIXED;
  let slot = lid / LP;
  let j = lid % LP;
  let i = wgStart + slot;
  let live = i < P.n;
  let comp = j < m;
  let ic = min(i, P.n - 1u);
  if (lid < perWg / 4u) { atomicStore(&admWords[lid], 0u); }

  let selecting = hasFlag(P, FLAG_SELECT);
  var gPre = NO_GROUP;
  var bkPre = vec2<u32>(0u, 0u);
  var leftG = NO_GROUP;
  var rightG = NO_GROUP;
  if (SEL_PREFETCH && selecting) {
    if (j == 0u) {
      gPre = groupAt(ic);
      if (hasFlag(P, FLAG_BASE)) { bkPre = baseKey[ic]; }
    }
    if (hasFlag(P, FLAG_CONTIGUOUS)) {
      if (wgStart > 0u) { leftG = groupAt(wgStart - 1u); }
      if (wgStart + perWg < P.n) { rightG = groupAt(wgStart + perWg); }
    }
  }

  let src = ic * t * m + min(j, m - 1u);
  var x: array<f32, MAXT>;
  for (var s = 0u; s < t; s++) { x[s] = select(0.0, loadE(src + s * m), comp); }

  var r: Metrics;
  if (hasFlag(P, FLAG_EVB_MAXABS)) {
    r.evb = min(1.0, maxSeg(abs(x[0] - x[t - 1u])));
  } else {
    var mean = 0.0;
    for (var s = 0u; s < t; s++) { mean += x[s]; }
    mean /= f32(t);
    var ss = 0.0;
    for (var s = 0u; s < t; s++) { let dv = x[s] - mean; ss += dv * dv; }
    r.evb = evbFromTrace(sumSeg(ss));
  }

  // rank(j) = #{k : E_k > E_j or (E_k == E_j and k < j)}, one exchange per other lane.
  var changedRows = 0u;
  var prevRank = 0u;
  for (var s = 0u; s < t; s++) {
    let v = select(-1.0, x[s], comp);
    var rank = 0u;
    for (var d = 1u; d < LP; d++) {
      let y = xorF(v, d);
      rank += select(0u, 1u, y > v || (y == v && (j ^ d) < j));
    }
    if (s > 0u && rank != prevRank && comp) { changedRows |= 1u << s; }
    prevRank = rank;
  }
  var crTotal = 0.0;
  if (crWeightsUniform(m)) {
    crTotal = f32(countOneBits(orSeg(changedRows))) * crWeight(0u);
  } else {
    for (var s = 1u; s < t; s++) {
      crTotal += maxSeg(select(0.0, crWeight(j), ((changedRows >> s) & 1u) != 0u));
    }
  }
  r.cr = crTotal / f32(t - 1u);

  if (hasFlag(P, FLAG_TS_EMB)) {
    r.ts = tsEmb[ic];
  } else {
    let invSqrtM = 1.0 / sqrt(f32(m));
    var sum = 0.0;
    for (var s = 1u; s < t; s++) {
      let dv = x[s] - x[s - 1u];
      sum += min(1.0, sqrt(sumSeg(dv * dv)) * invSqrtM);
    }
    r.ts = 1.0 - sum / f32(t - 1u);
  }

  let segLane0 = sgLane - j;
  var esLocal = 0.0;
  if (hasFlag(P, FLAG_REWARDS)) {
    if (j == 0u) { esLocal = esFromRewards(ic); }
  } else {
    var mean = 0.0;
    for (var s = 0u; s < t; s++) { mean += x[s]; }
    mean /= f32(t);
    var v = 0.0;
    for (var s = 0u; s < t; s++) { let dv = x[s] - mean; v += dv * dv; }
    esLocal = clamp(1.0 - v / f32(t) / P.vmax, 0.0, 1.0);
  }
  r.es = readLaneF(esLocal, segLane0 + select(P.confIndex, 0u, hasFlag(P, FLAG_REWARDS)));

  if (hasFlag(P, FLAG_POLICY)) {
    var pdLocal = 0.0;
    if (j == 0u) { pdLocal = pdFromPolicy(ic); }
    r.pd = readLaneF(pdLocal, segLane0);
  } else {
    // KL(p_s || p_{s-1}) = sum_j p * (log(p + eps) - log(q + eps)): each lane's log once per step.
    var prevLog = log(x[0] / (sumSeg(x[0]) + 1e-10) + 1e-10);
    var klSum = 0.0;
    for (var s = 1u; s < t; s++) {
      let p = x[s] / (sumSeg(x[s]) + 1e-10);
      let lp = log(p + 1e-10);
      klSum += max(sumSeg(select(0.0, p * (lp - prevLog), comp)), 0.0);
      prevLog = lp;
    }
    r.pd = min(1.0, klSum / f32(t - 1u) / P.dmax);
  }

  let w0 = P.w[0];
  let cci = w0.x * (1.0 - r.evb) + w0.y * (1.0 - r.cr) + w0.z * r.ts + w0.w * r.es + P.w[1].x * (1.0 - r.pd);
  let writer = live && j == 0u;
  let S = (P.n + 63u) & ~63u;
  if (writer) {
    outWords[i] = bitcast<u32>(r.evb);
    outWords[S + i] = bitcast<u32>(r.cr);
    outWords[2u * S + i] = bitcast<u32>(r.ts);
    outWords[3u * S + i] = bitcast<u32>(r.es);
    outWords[4u * S + i] = bitcast<u32>(r.pd);
    outWords[5u * S + i] = bitcast<u32>(cci);
  }
  workgroupBarrier();   // admWords zeroed
  if (writer && cci >= P.tau) { atomicOr(&admWords[slot >> 2u], 1u << (8u * (slot & 3u))); }
  var g = NO_GROUP;
  var admHi = 0u;
  var admLo = 0u;
  var anyKey = 0u;
  let gi = P.chunkStart + i;
  if (selecting && live) {
    g = gPre;
    if (!SEL_PREFETCH) { g = groupAt(i); }
    if (cci >= P.tau) {
      var adm = f32OrderKey64(cci);
      if (hasFlag(P, FLAG_BASE)) {
        var bk = bkPre;
        if (!SEL_PREFETCH) { bk = baseKey[i]; }
        if (bk.x != 0u || bk.y != 0u) { adm = bk; }
      }
      admHi = adm.x;
      admLo = adm.y;
    }
    anyKey = f32OrderKey(cci);
  }
  var admIdx = gi;
  var anyIdx = gi;
  // Runs of one group are reduced across the whole workgroup: every trajectory leaves its
  // candidate in workgroup memory (published by the barrier the admissible bytes need anyway),
  // then either the first trajectory of each run folds the run in order (SEL_TAIL = 0: ascending
  // index, so ties keep the lowest index) or all of them reduce it in log steps (SEL_TAIL = 1).
  if (selecting && writer) {
    runG[slot] = g;
    if (SEL_TAIL == 0u) {
      runHi[slot] = admHi;
      runLo[slot] = admLo;
      runKey[slot] = anyKey;
    } else {
      scanCand[slot] = SelCand(admHi, admLo, gi, anyKey, gi);
    }
  }
  workgroupBarrier();
  // perWg is a multiple of 4 (the host guarantees it), so wgStart is too: whole words per workgroup.
  let count = min(perWg, P.n - wgStart);
  if (lid * 4u < count) { outWords[6u * S + (wgStart >> 2u) + lid] = atomicLoad(&admWords[lid]); }
  if (!selecting) { return; }   // uniform: the scan's barriers follow

  if (SEL_TAIL == 1u) {
    let red = selectionScan(lid, count);
    if (lid >= count) { return; }
    let gk = runG[lid];
    if (lid > 0u && runG[lid - 1u] == gk) { return; }
    finishRun(gk, red.c, lid, red.last, count, wgStart, wgIndex, leftG, rightG);
    return;
  }

  if (!writer) { return; }
  if (slot > 0u && runG[slot - 1u] == g) { return; }
  var last = slot;
  for (var k = slot + 1u; k < count; k++) {
    if (runG[k] != g) { break; }
    let kIdx = wgStart + k + P.chunkStart;
    if (admBeats(runHi[k], runLo[k], kIdx, admHi, admLo, admIdx)) { admHi = runHi[k]; admLo = runLo[k]; admIdx = kIdx; }
    if (runKey[k] > anyKey) { anyKey = runKey[k]; anyIdx = kIdx; }
    last = k;
  }
  finishRun(g, SelCand(admHi, admLo, admIdx, anyKey, anyIdx), slot, last, count, wgStart, wgIndex, leftG, rightG);
}

// The reduced run [head, last] of group g (slots of this workgroup) goes to the selection state.
// leftPre / rightPre: the groups just outside the workgroup when SEL_PREFETCH loaded them.
fn finishRun(g: u32, c: SelCand, head: u32, last: u32, count: u32, wgStart: u32, wgIndex: u32, leftPre: u32, rightPre: u32) {
  let perWg = WG / LP;
  var rec = wgStart + head;
  if (hasFlag(P, FLAG_CONTIGUOUS)) {
    // Each group is one run of the batch (checked by the host): a run closed on both sides within
    // this workgroup is the whole group, so its winner goes straight to the group's state.
    var leftClosed = head > 0u;
    if (!leftClosed) {
      if (wgStart == 0u) {
        leftClosed = P.chunkStart == 0u;
      } else {
        var lg = leftPre;
        if (!SEL_PREFETCH) { lg = groupAt(wgStart - 1u); }
        leftClosed = lg != g;
      }
    }
    var rightClosed = last + 1u < count;
    if (!rightClosed) {
      let next = wgStart + last + 1u;   // = wgStart + perWg when it lies in the chunk
      if (next < P.n) {
        var rg = rightPre;
        if (!SEL_PREFETCH) { rg = groupAt(next); }
        rightClosed = rg != g;
      } else {
        rightClosed = hasFlag(P, FLAG_LAST_CHUNK);
      }
    }
    if (leftClosed && rightClosed) {
      atomicStore(&groupState[g].admHi, c.hi);
      atomicStore(&groupState[g].admLo, c.lo);
      atomicStore(&groupState[g].anyKey, c.key);
      atomicStore(&groupState[g].admIdx, c.aIdx);
      atomicStore(&groupState[g].anyIdx, c.kIdx);
      return;
    }
    // Otherwise the run touches an edge of the workgroup: at most one at each edge, two record
    // slots per workgroup of the batch.
    rec = 2u * (P.chunkStart / perWg + wgIndex) + select(1u, 0u, head == 0u);
  }
  selRec[rec] = SelRec(g + 1u, c.hi, c.lo, c.key, c.aIdx, c.kIdx);
  if (c.hi != 0u) { atomicMax(&groupState[g].admHi, c.hi); }
  atomicMax(&groupState[g].anyKey, c.key);
}
