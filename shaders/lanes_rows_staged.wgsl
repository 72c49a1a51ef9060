// Rows of the rows layout (lanes_rows.wgsl) through workgroup memory, float32 E with m = 4 LP
// (m in 4, 8, 16, 32): the workgroup's SLOTS trajectories are WG * T consecutive 16-byte words,
// which invocation lid copies with fully coalesced loads (word k * WG + lid for each step k)
// before one barrier; lane h of slot q then reads its rows from workgroup memory. A benchmark
// variant of lanes_rows_direct.wgsl (whose per-instruction loads touch one sector per trajectory).

@group(0) @binding(1) var<storage, read> E: array<vec4<u32>>;      // f32 bits

var<workgroup> rowStage: array<vec4<u32>, WG * T_FIXED>;

fn stageRows(lid: u32, wgStart: u32) {
  let words = P.n * T_FIXED * LP;          // the chunk's E in 16-byte words
  let base = wgStart * T_FIXED * LP;
  for (var k = 0u; k < T_FIXED; k++) {
    let w = base + k * WG + lid;
    if (w < words) { rowStage[k * WG + lid] = E[w]; }
  }
  workgroupBarrier();
}

// Components 4h..4h+3 of row s of the workgroup's trajectory in slot `slot` (ic is that trajectory).
fn loadRow(ic: u32, s: u32, h: u32, slot: u32) -> vec4<f32> {
  if (PROBE == 2u) {
    let v = (ic * T_FIXED + s) * M_FIXED + 4u * h;
    return fract(vec4<f32>(f32(v), f32(v + 1u), f32(v + 2u), f32(v + 3u)) * 0.6180339);
  }
  return bitcast<vec4<f32>>(rowStage[(slot * T_FIXED + s) * LP + h]);
}
