/**
 * The layering of src/ (README "Layout"): each folder may import only the folders below it.
 * `npm run lint` runs this with `depcruise src`; a violation names both modules and the rule.
 */
const LAYERS = {
  core: [],
  backends: ['core'],
  engine: ['core', 'backends'],
  llm: ['core'],
  monitoring: ['core', 'llm'],
  cache: ['core', 'llm', 'monitoring'],
  pipeline: ['core', 'backends', 'engine', 'llm', 'cache', 'monitoring'],
  calibration: ['core', 'backends', 'engine'],
  queue: ['core', 'backends', 'engine', 'cache'],
  server: ['core', 'backends', 'engine', 'llm', 'cache', 'monitoring', 'pipeline'],
  testing: ['core', 'backends', 'engine', 'llm', 'calibration'],
  bench: ['core', 'backends', 'engine', 'llm', 'cache', 'monitoring', 'pipeline', 'server', 'testing'],
};

/** One rule per layer: from src/<layer>/ to any other src/ folder it is not allowed. */
const layerRules = Object.entries(LAYERS).map(([layer, allowed]) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ may import only ${allowed.length ? allowed.map((l) => `src/${l}/`).join(', ') : 'itself'}`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: '^src/', pathNot: [`^src/${layer}/`, ...allowed.map((l) => `^src/${l}/`)] },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'entry-points-only-on-top',
      comment: 'nothing in src/ imports the package entry points (src/index.ts, src/cli.ts) or src/cli/',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/cli/', '^src/cli\\.ts$'] },
      to: { path: ['^src/cli/', '^src/cli\\.ts$', '^src/index\\.ts$'] },
    },
    {
      name: 'no-circular',
      comment: 'no import cycle, type-only imports included',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-dev-dependencies-in-src',
      comment: 'src/ ships: it may not import a devDependency',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'no-orphans',
      comment: 'every module in src/ is imported by something (entry points and worker entries excepted)',
      severity: 'error',
      from: {
        orphan: true,
        pathNot: ['\\.d\\.ts$', '^src/index\\.ts$', '^src/cli\\.ts$', '^src/[^/]+/index\\.ts$', 'worker\\.ts$', '^src/testing/loopback-main\\.ts$'],
      },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a type-only cycle or upward type import is still a layering fault.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
