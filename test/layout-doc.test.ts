import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

// The README's "Layout" table is what a maintainer reads; .dependency-cruiser.cjs is what
// `npm run lint` enforces. They must say the same thing.
const require = createRequire(import.meta.url);
interface Rule {
  name: string;
  to: { pathNot?: string[] };
}
const { forbidden } = require('../.dependency-cruiser.cjs') as { forbidden: Rule[] };
/** layer -> the folders its rule lets it import, read back from the rule's pathNot (`^src/x/`). */
const layers = Object.fromEntries(
  forbidden
    .filter((rule) => rule.name.startsWith('layer-'))
    .map((rule) => {
      const layer = rule.name.slice('layer-'.length);
      const allowed = (rule.to.pathNot ?? []).map((p) => p.replace(/^\^src\//, '').replace(/\/$/, '')).filter((l) => l !== layer);
      return [layer, allowed];
    }),
);

function readmeLayers(): Record<string, string[]> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Layout'));
  const rows: Record<string, string[]> = {};
  for (const match of section.matchAll(/^\| `([a-z]+)\/` \| [^|]+ \| ([^|]+) \|$/gm)) {
    const allowed = match[2].trim();
    rows[match[1]] = allowed === 'nothing else in the project' || allowed === 'anything' ? [] : allowed.split(', ').map((s) => s.trim());
  }
  return rows;
}

describe('the README Layout table', () => {
  it('names, for each folder, exactly the folders dependency-cruiser lets it import', () => {
    const documented = readmeLayers();
    expect(Object.keys(documented).sort()).toEqual([...Object.keys(layers), 'cli'].sort());
    for (const [layer, allowed] of Object.entries(layers)) {
      expect({ layer, allowed: [...documented[layer]].sort() }).toEqual({ layer, allowed: [...allowed].sort() });
    }
  });
});
