/**
 * Runs the loopback server as its own process (for `ecr bench-pipeline --server child`):
 * `node dist/testing/loopback-main.js [--latency MS] [--ignore-n] [--reject-n 400|500] [--no-logprobs]`. Prints one JSON line
 * {"url": ...} when listening and exits when stdin closes or on SIGTERM.
 */
import { parseArgs } from 'node:util';
import { LoopbackServer } from './loopback-server.js';

const { values } = parseArgs({
  options: {
    latency: { type: 'string', default: '0' },
    'ignore-n': { type: 'boolean', default: false },
    'reject-n': { type: 'string' },
    'no-logprobs': { type: 'boolean', default: false },
  },
});
const rejectN = values['reject-n'] === undefined ? undefined : Number(values['reject-n']);
if (rejectN !== undefined && rejectN !== 400 && rejectN !== 500) throw new Error('--reject-n must be 400 or 500');
const server = await LoopbackServer.start({ latencyMs: Number(values.latency), ignoreN: values['ignore-n'], rejectN, logprobs: !values['no-logprobs'] });
process.stdout.write(JSON.stringify({ url: server.url }) + '\n');
const stop = () => {
  void server.close().then(() => process.exit(0));
};
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
