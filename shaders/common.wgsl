// Helpers every ECR kernel shares. The host prepends, in this order: WGSL directives, the
// generated `struct Params` and FLAG_* constants (src/backends/webgpu/uniforms.ts), the generated
// binding declarations of the kernel's program (src/backends/webgpu/programs/), then this file,
// then the kernel's own files. Sizes travel in Params, so one compiled pipeline serves every batch
// of the same structure.

// When true, E arrives as unorm16 pairs (pack2x16unorm layout: element 2k in the low half).
override E_UNORM16: bool = false;

fn hasFlag(p: Params, f: u32) -> bool { return (p.flags & f) != 0u; }

// Metrics outputs are struct-of-arrays: six f32 arrays (EVB CR TS ES PD CCI) of this stride (the
// chunk's count rounded up to 64); mirrored by metricStride in layout.ts.
fn outStride(n: u32) -> u32 { return (n + 63u) & ~63u; }

// Workgroup index of a dispatch that may have been refolded into 2D.
fn flatWorkgroup(wg: vec3<u32>, wgPerRow: u32) -> u32 { return wg.x + wg.y * wgPerRow; }
