/**
 * node:util's parseArgs, but a negative number after an option that takes a value is that value.
 *
 * parseArgs refuses `--shard-bytes -5` with "argument is ambiguous" (the value looks like an
 * option), which hides the real problem, a value out of range, behind a riddle about dashes. No
 * option of these commands is spelled with a digit, so a token such as `-5`, `-0.5` or `-1e3`
 * after an option that takes a value is joined to it (`--shard-bytes=-5`), and the flag's own
 * check then says what range it accepts.
 */
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';

const NEGATIVE_NUMBER = /^-(?:\d|\.\d|Infinity$)/;

type Options = ParseArgsConfig['options'];

/** The long name of the string option `token` names (`--name` or `-n`), or null. */
function valueOption(token: string, options: Options): string | null {
  if (!options || token.includes('=')) return null;
  if (token.startsWith('--')) {
    const name = token.slice(2);
    return options[name]?.type === 'string' ? name : null;
  }
  if (/^-[^-]$/.test(token)) {
    const entry = Object.entries(options).find(([, o]) => o.short === token[1]);
    return entry && entry[1].type === 'string' ? entry[0] : null;
  }
  return null;
}

/** `args` with every `--option -NUMBER` pair written `--option=-NUMBER`. */
export function joinNegativeValues(args: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const token = args[i];
    if (token === '--') {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    const name = next !== undefined && NEGATIVE_NUMBER.test(next) ? valueOption(token, options) : null;
    if (name !== null) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(token);
    }
  }
  return out;
}

export function parseArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof nodeParseArgs<T>> {
  const args = joinNegativeValues(config.args ?? process.argv.slice(2), config.options);
  return nodeParseArgs<T>({ ...config, args });
}
