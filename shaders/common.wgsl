// Shared declarations, prepended to every ECR kernel by the host (src/gpu/shader-source.ts).
// Sizes and switches travel in this uniform block so one compiled pipeline serves every batch
// of the same structure; its byte layout is mirrored by src/backends/webgpu/params.ts.

struct Params {
  n: u32,            // trajectories in this chunk
  t: u32,            // steps per trajectory
  m: u32,            // components of E
  a: u32,            // policy width A, or embedding width d for the TS kernel
  chunkStart: u32,   // batch index of this chunk's first trajectory
  confIndex: u32,
  flags: u32,
  wgPerRow: u32,     // workgroups along x of a refolded 2D dispatch
  lambda: f32,
  tau: f32,          // the smallest f32 >= tau, so f32 CCI >= it exactly when CCI >= tau in f64
  vmax: f32,
  dmax: f32,
  w: array<vec4<f32>, 2>,   // CCI weights alpha..epsilon in w[0].xyzw, w[1].x
  crW: array<vec4<f32>, 8>, // CR component weights, m <= 32
}

const FLAG_POLICY: u32 = 1u;
const FLAG_REWARDS: u32 = 2u;
const FLAG_TS_EMB: u32 = 4u;
const FLAG_BASE: u32 = 8u;
const FLAG_GROUPS: u32 = 16u;
const FLAG_EVB_MAXABS: u32 = 32u;
const FLAG_SHRINK_SCALED: u32 = 64u;
const FLAG_SHRINK_LW: u32 = 128u;
const FLAG_SELECT: u32 = 256u;
const FLAG_CONTIGUOUS: u32 = 512u;  // every group is one contiguous run of the batch (lane kernel only)
const FLAG_LAST_CHUNK: u32 = 1024u; // this chunk ends the batch

// When true, E arrives as unorm16 pairs (pack2x16unorm layout: element 2k in the low half).
override E_UNORM16: bool = false;

fn hasFlag(p: Params, f: u32) -> bool { return (p.flags & f) != 0u; }

// Metrics outputs are struct-of-arrays: six f32 arrays (EVB CR TS ES PD CCI) of this stride (the
// chunk's count rounded up to 64), then the admissible bytes; mirrored by metricStride in layout.ts.
fn outStride(n: u32) -> u32 { return (n + 63u) & ~63u; }

// Workgroup index of a dispatch that may have been refolded into 2D.
fn flatWorkgroup(wg: vec3<u32>, wgPerRow: u32) -> u32 { return wg.x + wg.y * wgPerRow; }

// Per-group selection state; see select_groups.wgsl. Keys are order-preserving encodings, so an
// unsigned max finds the largest score; 0 is below every encoded number and means "none".
struct GroupState {
  admHi: atomic<u32>,   // best admissible base score, f64 key high word
  admLo: atomic<u32>,   // ... low word, among candidates with that high word
  anyKey: atomic<u32>,  // best CCI (f32 key), for the fallback
  admIdx: atomic<u32>,  // lowest index holding the best admissible key
  anyIdx: atomic<u32>,  // lowest index holding the best CCI
}

fn f32OrderKey(x: f32) -> u32 {
  let b = select(bitcast<u32>(x), 0u, x == 0.0); // -0 and +0 compare equal
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// The f64 order key (hi, lo) of an f32 value: the same key the host computes for a float64
// baseScore, so a CCI standing in for a base score compares exactly as it does on the host.
fn f32OrderKey64(x: f32) -> vec2<u32> {
  let b = select(bitcast<u32>(x), 0u, x == 0.0);
  let sign = b & 0x80000000u;
  let ex = (b >> 23u) & 0xffu;
  var mant = b & 0x7fffffu;
  var ex64 = 0u;
  if (ex == 255u) {
    ex64 = 2047u;
  } else if (ex != 0u) {
    ex64 = ex + 896u;
  } else if (mant != 0u) {
    // subnormal f32: normalize, f64 has the exponent range for it
    let shift = countLeadingZeros(mant) - 8u;
    mant = (mant << shift) & 0x7fffffu;
    ex64 = 897u - shift;
  }
  let hi = sign | (ex64 << 20u) | (mant >> 3u);
  let lo = mant << 29u;
  if (sign != 0u) { return vec2<u32>(~hi, ~lo); }
  return vec2<u32>(hi | 0x80000000u, lo);
}
