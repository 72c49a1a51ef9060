// Per-group selection over the trajectories of one workgroup, pass 1 of the selection (passes
// 2-4: select_groups.wgsl). The including kernel defines SLOTS (trajectories per workgroup, at
// most its invocations) and binds P, baseKey, groups, selRec and groupState.
//
// Each trajectory's candidate goes to a workgroup slot (publishRun); after a barrier, every
// invocation calls reduceRuns: runs of one group among the slots are reduced by a log-step
// segmented reduction, and the first slot of each run finishes it. With FLAG_CONTIGUOUS (the host
// checked that every group is one run of the batch) a run closed on both sides within the
// workgroup is the whole group, so its winner is stored straight into the group's state; a run
// at a workgroup edge leaves one of two records per workgroup. Without it, every run leaves a
// record at its first trajectory's chunk index. Runs also raise the group's high key words with
// atomics, which passes 2-4 refine.

const NO_GROUP: u32 = 0xffffffffu;

// The record buffer is cleared to zero once per batch (clearBuffer), so only the first
// trajectory of each run writes: tag 0 means "no record here".
struct SelRec {
  tag: u32,       // group + 1 for the first record of a run; 0 (cleared) elsewhere
  admHi: u32,     // best admissible key of the run (0, 0 = none)
  admLo: u32,
  anyKey: u32,    // best CCI key of the run
  admIdx: u32,    // lowest batch index holding the run's best admissible key
  anyIdx: u32,    // lowest batch index holding the run's best CCI
}

// A run's best admissible candidate (f64 order key hi/lo, batch index) and best CCI (f32 order
// key, batch index).
struct SelCand { hi: u32, lo: u32, aIdx: u32, key: u32, kIdx: u32 }

var<workgroup> runG: array<u32, SLOTS>;
// Two buffers of partial reductions, and per slot the last slot its partial reduction covers,
// with SCAN_CLOSED set once that range reaches the end of its run.
var<workgroup> scanCand: array<SelCand, 2u * SLOTS>;
var<workgroup> scanEnd: array<u32, 2u * SLOTS>;
const SCAN_CLOSED: u32 = 0x80000000u;

// (hi, lo, idx) beats (hi', lo', idx'): larger key, then lower index.
fn admBeats(hi: u32, lo: u32, idx: u32, hi2: u32, lo2: u32, idx2: u32) -> bool {
  return hi > hi2 || (hi == hi2 && (lo > lo2 || (lo == lo2 && idx < idx2)));
}

fn groupAt(k: u32) -> u32 {
  // Not select(): without a groups array the binding is a small placeholder that groups[k]
  // would read past (robustness clamps are off on native adapters).
  if (hasFlag(P, FLAG_GROUPS)) { return groups[k]; }
  return 0u;
}

// The candidate of chunk trajectory i whose CCI (as written to the outputs) is cci: admissible
// when cci >= tau (P.tau is the smallest f32 >= tau, so this is the host's f64 comparison), keyed
// by its base score, or by the CCI where the base score is absent.
fn selCandidate(i: u32, cci: f32) -> SelCand {
  let gi = P.chunkStart + i;
  var adm = vec2<u32>(0u, 0u);
  if (cci >= P.tau) {
    adm = f32OrderKey64(cci);
    if (hasFlag(P, FLAG_BASE)) {
      let bk = baseKey[i];
      if (bk.x != 0u || bk.y != 0u) { adm = bk; }
    }
  }
  return SelCand(adm.x, adm.y, gi, f32OrderKey(cci), gi);
}

// Slot `slot` holds group g's candidate c. A workgroup barrier must follow before reduceRuns.
fn publishRun(slot: u32, g: u32, c: SelCand) {
  runG[slot] = g;
  scanCand[slot] = c;
}

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

// Hillis-Steele suffix reduction within runs over slots 0..count-1: after the step with offset
// d, slot k holds the reduction of [k, k + 2d - 1] cut at its run's end. A slot still open after
// covering [k, k + d - 1] has its run continue at k + d, so it absorbs that slot's range.
// Invocation lid works on slot lid; the last step stays in registers, so invocation k returns the
// whole run's reduction when k heads a run. Every invocation must call this (barriers).
struct ScanResult { c: SelCand, last: u32 }
fn selectionScan(lid: u32, count: u32) -> ScanResult {
  var src = 0u;
  var c: SelCand;
  var e = 0u;
  if (lid < count) {
    c = scanCand[lid];
    e = scanEndInitial(lid, count);
  }
  for (var d = 1u; d < SLOTS; d <<= 1u) {
    if (lid < count && (e & SCAN_CLOSED) == 0u) {   // open, so lid + d < count and in the same run
      let k2 = lid + d;
      c = combineCand(c, scanCand[src + k2]);
      e = select(scanEnd[src + k2], scanEndInitial(k2, count), d == 1u);
    }
    if (2u * d < SLOTS) {
      let dst = SLOTS - src;
      if (lid < count) { scanCand[dst + lid] = c; scanEnd[dst + lid] = e; }
      src = dst;
      workgroupBarrier();
    }
  }
  return ScanResult(c, e & ~SCAN_CLOSED);
}

// Pass 1 over the published slots 0..count-1 of the workgroup starting at chunk index wgStart.
// Every invocation of the workgroup must call it, after the barrier that publishes the slots.
fn reduceRuns(lid: u32, count: u32, wgStart: u32, wgIndex: u32) {
  let red = selectionScan(lid, count);
  if (lid >= count) { return; }
  let g = runG[lid];
  if (lid > 0u && runG[lid - 1u] == g) { return; }
  finishRun(g, red.c, lid, red.last, count, wgStart, wgIndex);
}

// The reduced run [head, last] of group g (slots of this workgroup) goes to the selection state.
fn finishRun(g: u32, c: SelCand, head: u32, last: u32, count: u32, wgStart: u32, wgIndex: u32) {
  var rec = wgStart + head;
  if (hasFlag(P, FLAG_CONTIGUOUS)) {
    var leftClosed = head > 0u;
    if (!leftClosed) {
      if (wgStart == 0u) {
        leftClosed = P.chunkStart == 0u;
      } else {
        leftClosed = groupAt(wgStart - 1u) != g;
      }
    }
    var rightClosed = last + 1u < count;
    if (!rightClosed) {
      let next = wgStart + last + 1u;   // = wgStart + SLOTS when it lies in the chunk
      if (next < P.n) {
        rightClosed = groupAt(next) != g;
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
    // The run touches an edge of the workgroup: at most one at each edge, two record slots per
    // workgroup of the batch (chunk starts are multiples of SLOTS).
    rec = 2u * (P.chunkStart / SLOTS + wgIndex) + select(1u, 0u, head == 0u);
  }
  selRec[rec] = SelRec(g + 1u, c.hi, c.lo, c.key, c.aIdx, c.kIdx);
  if (c.hi != 0u) { atomicMax(&groupState[g].admHi, c.hi); }
  atomicMax(&groupState[g].anyKey, c.key);
}
