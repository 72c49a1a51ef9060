/**
 * The two environment variables that the native libraries under Dawn read themselves, and so the
 * only ones this library touches (everything else arrives as options; the CLI maps ECR_* to them).
 *
 * - LD_LIBRARY_PATH is read, not configured: the dynamic linker consults it in this very process
 *   when Dawn opens libvulkan.so.1, so predicting that lookup (vulkanLoaderPresent) needs the
 *   process's own value; a value passed in by a caller could only disagree with the linker.
 * - EGL_PLATFORM is set when unset: Dawn's OpenGL ES backend needs an EGL platform, and on a
 *   headless machine (no display server, the usual server or container) only `surfaceless`
 *   works. Mesa's libEGL reads the variable from the process environment when Dawn creates the
 *   display; there is no API to hand it over, so a library user on such a machine would
 *   otherwise get no OpenGL ES adapter at all. An EGL_PLATFORM the user set is kept.
 */
export function ldLibraryPath(): string {
  return process.env.LD_LIBRARY_PATH ?? '';
}

export function ensureEglPlatform(): void {
  process.env.EGL_PLATFORM ??= 'surfaceless';
}
