// Rows of the rows layout (lanes_rows.wgsl) straight from global memory: lane h loads components
// 4h..4h+3 of each row as one 16-byte word (8 bytes for unorm16).

@group(0) @binding(1) var<storage, read> E: array<vec4<u32>>;      // f32 bits, or 8 unorm16 per vec4

fn stageRows(lid: u32, wgStart: u32) {}

// Components 4h..4h+3 of row s of chunk trajectory ic (4h < m); slot is unused here.
fn loadRow(ic: u32, s: u32, h: u32, slot: u32) -> vec4<f32> {
  let v = (ic * T_FIXED + s) * M_FIXED + 4u * h;   // index of the first value: a multiple of 4
  if (PROBE == 2u) { return fract(vec4<f32>(f32(v), f32(v + 1u), f32(v + 2u), f32(v + 3u)) * 0.6180339); }
  if (E_UNORM16) {
    let w = E[v >> 3u];
    let half = select(w.xy, w.zw, (v & 4u) != 0u);
    return vec4<f32>(unpack2x16unorm(half.x), unpack2x16unorm(half.y));
  }
  return bitcast<vec4<f32>>(E[v >> 2u]);
}
