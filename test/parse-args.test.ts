/**
 * The commands' argument parser: node's parseArgs, except that a negative number after an option
 * that takes a value is that value, so the flag's own range check speaks instead of parseArgs'
 * "argument is ambiguous" (issue 18, item 18).
 */
import { describe, expect, it } from 'vitest';
import { joinNegativeValues, parseArgs } from '../src/core/parse-args.js';
import { runCli } from './helpers/cli.js';

const options = { n: { type: 'string', short: 'n' }, flag: { type: 'boolean' }, out: { type: 'string' } } as const;

describe('joinNegativeValues', () => {
  it('joins a negative number to the value option before it, long or short', () => {
    expect(joinNegativeValues(['--n', '-5'], options)).toEqual(['--n=-5']);
    expect(joinNegativeValues(['-n', '-0.5', 'x'], options)).toEqual(['--n=-0.5', 'x']);
    expect(joinNegativeValues(['--n', '-1e3'], options)).toEqual(['--n=-1e3']);
    expect(parseArgs({ args: ['--n', '-5'], options }).values.n).toBe('-5');
  });

  it('leaves everything else as parseArgs reads it', () => {
    expect(joinNegativeValues(['--flag', '-5'], options)).toEqual(['--flag', '-5']);
    expect(joinNegativeValues(['--out', '-'], options)).toEqual(['--out', '-']);
    expect(joinNegativeValues(['--', '--n', '-5'], options)).toEqual(['--', '--n', '-5']);
    expect(joinNegativeValues(['--n=1', '-5'], options)).toEqual(['--n=1', '-5']);
    expect(() => parseArgs({ args: ['--n', '-x'], options })).toThrow(/ambiguous/);
  });
});

describe('negative values on the command line', () => {
  it.each([
    [['run', 'hi', '--base-url', 'http://127.0.0.1:9/v1', '--model', 'm', '-k', '-3'], /--k must be an integer in 1\.\.256, got "-3"/],
    [['serve', '--upstream', 'http://127.0.0.1:9/v1', '--port', '-5'], /--port: must be in 0\.\.65535, got "-5"/],
    [['convert', 'x.jsonl', 'y.parquet', '--window', '-1'], /--window must be a positive integer, got "-1"/],
  ])('ecr %s is a range error, not "ambiguous"', (args, message) => {
    const r = runCli(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/ambiguous/);
  });
});
