/**
 * What `npm publish` would ship (`npm pack --dry-run --json`, offline, without the prepare
 * build): the README's links resolve inside the package, a LICENSE is there, and no source map
 * points at sources the package does not contain. Needs the build (npm test builds first).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--offline'], { cwd: ROOT, encoding: 'utf8' });
const files: string[] = pack.status === 0 ? (JSON.parse(pack.stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path) : [];
const shipped = new Set(files);

/** Relative link targets in a markdown file ([text](target)), without anchors; URLs left out. */
function relativeLinks(markdownFile: string): string[] {
  const text = readFileSync(path.join(ROOT, markdownFile), 'utf8');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1].split('#')[0])
    .filter((target) => target !== '' && !/^[a-z][a-z0-9+.-]*:/i.test(target))
    .map((target) => path.posix.normalize(path.posix.join(path.posix.dirname(markdownFile), target)));
}

describe('the npm package', () => {
  it('packs without the network', () => {
    expect(pack.stderr).not.toMatch(/ERR!/);
    expect(pack.status).toBe(0);
  });

  it('contains the entry points, the CLI, the shaders and the bundled examples', () => {
    for (const f of [
      'package.json',
      'README.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli.js',
      'shaders/common.wgsl',
      'data/paper-worked-example.jsonl',
    ]) {
      expect(shipped, f).toContain(f);
    }
  });

  it('contains the MIT LICENSE that package.json names', () => {
    expect(shipped).toContain('LICENSE');
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { license: string };
    expect(pkg.license).toBe('MIT');
    expect(readFileSync(path.join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} ecr-engine contributors\n/);
  });

  it('contains every file the README links to (docs/ECR-SPEC.md among them)', () => {
    const links = relativeLinks('README.md');
    expect(links).toContain('docs/ECR-SPEC.md');
    expect(links.filter((l) => !shipped.has(l))).toEqual([]);
  });

  it('ships no source maps (they would point at src/, which is not shipped)', () => {
    expect(files.length).toBeGreaterThan(0);
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/') && f.endsWith('.ts'))).toEqual([]);
  });

  it('ships no tests, benchmark results or packed tarballs, and git ignores the tarballs', () => {
    expect(files.filter((f) => f.startsWith('test/') || f.endsWith('.tgz') || /^bench\/results/.test(f))).toEqual([]);
    expect(readFileSync(path.join(ROOT, '.gitignore'), 'utf8').split('\n')).toContain('*.tgz');
  });
});
