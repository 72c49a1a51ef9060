/**
 * Any Arrow value as JSON text, for `meta` (and whatever a JSONL line carries unscored) when a
 * columnar file becomes JSONL: nothing valid is lost, and nothing is rounded.
 *
 * - 64-bit integers and decimals are written with their exact digits (JSON numbers have no
 *   precision limit; Python, jq 1.7 and Go's json.Number read them whole). Reading such a line
 *   back into a JS number would round it, which is why ecr keeps `meta` as text (jsonl-input.ts).
 * - Floats as the shortest text that reads back as the same float; NaN and infinities have no
 *   JSON form and are an error naming the row and path, as they are in a JSONL line.
 * - Timestamps as ISO 8601 (UTC with a time zone, local "wall clock" without one) with every
 *   digit of their unit; dates as YYYY-MM-DD; times of day as HH:MM:SS[.fraction]; durations as
 *   the integer count of their unit; intervals as {months, days, nanoseconds} (the fields their
 *   unit has).
 * - Binary as base64 text; lists as arrays; structs as objects; maps as objects when the keys
 *   are strings, else as [key, value] pairs; dictionaries and unions as the value they select.
 */
import { DateUnit, IntervalUnit, Precision, TimeUnit, Type, util, type Data } from 'apache-arrow';
import { InputError } from '../../core/errors.js';
import { viewBytes } from './cells.js';

const utf8 = new TextDecoder();

/** Path segments for messages, as record.ts writes them: meta.a[2]. */
const child = (path: string, key: string | number) =>
  typeof key === 'number' ? `${path}[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

export interface JsonTextContext {
  /** The row (1-based) for messages. */
  row: number;
  id?: string;
}

/** Entry i of `d` as JSON text; `path` names it in messages. */
export function jsonTextAt(d: Data, i: number, path: string, at: JsonTextContext): string {
  if (d.typeId !== Type.Null && d.typeId !== Type.Union && !d.getValid(i)) return 'null';
  const type = d.type as unknown as Record<string, unknown>;
  const v = d.values as ArrayLike<number | bigint> & Uint8Array;
  switch (d.typeId) {
    case Type.Null:
      return 'null';
    case Type.Bool:
      return ((v[(d.offset + i) >> 3] >> ((d.offset + i) & 7)) & 1) === 1 ? 'true' : 'false';
    case Type.Int:
      return String(v[i]);
    case Type.Float: {
      const x = type.precision === Precision.HALF ? util.uint16ToFloat64(v[i]) : v[i];
      if (!Number.isFinite(x))
        throw new InputError(`${x} is not a finite number, which JSON cannot hold (meta is not scored, but is carried as JSON)`, {
          row: at.row,
          id: at.id,
          field: path,
        });
      return shortestFloat(x, type.precision as Precision);
    }
    case Type.Decimal:
      return decimalText(d, i);
    case Type.Utf8:
    case Type.LargeUtf8:
      return JSON.stringify(utf8.decode(varBytes(d, i)));
    case Type.Utf8View: {
      const b = viewBytes(d, i);
      return JSON.stringify(utf8.decode(b.bytes.subarray(b.start, b.end)));
    }
    case Type.Binary:
    case Type.LargeBinary:
      return JSON.stringify(Buffer.from(varBytes(d, i)).toString('base64'));
    case Type.BinaryView: {
      const b = viewBytes(d, i);
      return JSON.stringify(Buffer.from(b.bytes.subarray(b.start, b.end)).toString('base64'));
    }
    case Type.FixedSizeBinary: {
      const w = type.byteWidth as number;
      return JSON.stringify(Buffer.from(v.subarray(i * w, (i + 1) * w)).toString('base64'));
    }
    case Type.Date:
      return JSON.stringify(dateText(type.unit === DateUnit.DAY ? BigInt(v[i]) * 86400000n : BigInt(v[i])));
    case Type.Timestamp:
      return JSON.stringify(timestampText(BigInt(v[i]), type.unit as TimeUnit, type.timezone != null && type.timezone !== ''));
    case Type.Time:
      return JSON.stringify(timeText(BigInt(v[i]), type.unit as TimeUnit));
    case Type.Duration:
      return String(v[i]);
    case Type.Interval:
      return intervalText(d, i);
    case Type.List:
    case Type.LargeList:
    case Type.FixedSizeList: {
      const [e0, e1] = entries(d, i);
      const parts: string[] = [];
      for (let e = e0; e < e1; e++) parts.push(jsonTextAt(d.children[0], e, child(path, e - e0), at));
      return `[${parts.join(',')}]`;
    }
    case Type.Struct: {
      const fields = type.children as { name: string }[];
      return `{${fields.map((f, k) => `${JSON.stringify(f.name)}:${jsonTextAt(d.children[k], i, child(path, f.name), at)}`).join(',')}}`;
    }
    case Type.Map: {
      const [e0, e1] = entries(d, i);
      const pairs = d.children[0];
      const [keys, values] = pairs.children;
      const stringKeys = [Type.Utf8, Type.LargeUtf8, Type.Utf8View].includes(keys.typeId);
      const parts: string[] = [];
      for (let e = e0; e < e1; e++) {
        const key = jsonTextAt(keys, e, child(path, e - e0), at);
        const value = jsonTextAt(values, e, child(path, stringKeys ? (JSON.parse(key) as string) : e - e0), at);
        parts.push(stringKeys ? `${key}:${value}` : `[${key},${value}]`);
      }
      return stringKeys ? `{${parts.join(',')}}` : `[${parts.join(',')}]`;
    }
    case Type.Dictionary: {
      let k = Number(v[i]);
      for (const chunk of d.dictionary!.data as Data[]) {
        if (k < chunk.length) return jsonTextAt(chunk, k, path, at);
        k -= chunk.length;
      }
      throw new InputError(`dictionary index ${v[i]} is outside its dictionary (the file is damaged)`, { row: at.row, id: at.id, field: path });
    }
    case Type.Union: {
      const typeIds = d.typeIds as Int8Array;
      const index = (type.typeIdToChildIndex as Record<number, number>)[typeIds[i]];
      const dense = d.valueOffsets as Int32Array | undefined;
      return jsonTextAt(d.children[index], dense ? dense[i] : i, path, at);
    }
    default:
      throw new InputError(`has the Arrow type ${String(d.type)}, which cannot be written as JSON`, { row: at.row, id: at.id, field: path });
  }
}

/** The shortest decimal text that reads back as the same value of the column's width (a float32 0.1 is "0.1"). */
function shortestFloat(x: number, precision: Precision): string {
  if (precision === Precision.DOUBLE) return JSON.stringify(x);
  const same = precision === Precision.SINGLE ? (y: number) => Math.fround(y) === x : (y: number) => util.float64ToUint16(y) === util.float64ToUint16(x);
  for (let digits = 1; digits < 17; digits++) {
    const y = Number(x.toPrecision(digits));
    if (same(y)) return JSON.stringify(y);
  }
  return JSON.stringify(x);
}

function varBytes(d: Data, i: number): Uint8Array {
  const O = d.valueOffsets as Int32Array | BigInt64Array;
  return (d.values as Uint8Array).subarray(Number(O[i]), Number(O[i + 1]));
}

/** Child entries [e0, e1) of list entry i. */
function entries(d: Data, i: number): [number, number] {
  if (d.typeId === Type.FixedSizeList) {
    const size = (d.type as unknown as { listSize: number }).listSize;
    return [i * size, (i + 1) * size];
  }
  const O = d.valueOffsets as Int32Array | BigInt64Array;
  return [Number(O[i]), Number(O[i + 1])];
}

function decimalText(d: Data, i: number): string {
  const { scale, bitWidth } = d.type as unknown as { scale: number; bitWidth: number };
  const words = bitWidth / 32;
  const w = d.values as unknown as Uint32Array;
  let x = 0n;
  for (let k = words - 1; k >= 0; k--) x = (x << 32n) | BigInt(w[i * words + k]);
  if (x >> BigInt(bitWidth - 1)) x -= 1n << BigInt(bitWidth); // two's complement
  const negative = x < 0n;
  let digits = (negative ? -x : x).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  } else if (scale < 0) {
    digits += '0'.repeat(-scale);
  }
  return (negative ? '-' : '') + digits;
}

const PER_SECOND: Record<number, bigint> = {
  [TimeUnit.SECOND]: 1n,
  [TimeUnit.MILLISECOND]: 1000n,
  [TimeUnit.MICROSECOND]: 1000000n,
  [TimeUnit.NANOSECOND]: 1000000000n,
};
const FRACTION_DIGITS: Record<number, number> = { [TimeUnit.SECOND]: 0, [TimeUnit.MILLISECOND]: 3, [TimeUnit.MICROSECOND]: 6, [TimeUnit.NANOSECOND]: 9 };

/** A day count and the rest of a span in `unit`s since the epoch, split with floor division. */
function split(value: bigint, perDay: bigint): [bigint, bigint] {
  let days = value / perDay,
    rest = value % perDay;
  if (rest < 0n) {
    rest += perDay;
    days -= 1n;
  }
  return [days, rest];
}

function dayText(days: bigint): string {
  const date = new Date(Number(days) * 86400000);
  const y = date.getUTCFullYear();
  const year = y >= 0 && y <= 9999 ? String(y).padStart(4, '0') : (y < 0 ? '-' : '+') + String(Math.abs(y)).padStart(6, '0');
  return `${year}-${String(date.getUTCMonth() + 1).padStart(2, '0')}-${String(date.getUTCDate()).padStart(2, '0')}`;
}

function clockText(rest: bigint, unit: TimeUnit): string {
  const per = PER_SECOND[unit];
  const seconds = rest / per,
    fraction = rest % per;
  const hh = seconds / 3600n,
    mm = (seconds / 60n) % 60n,
    ss = seconds % 60n;
  const two = (x: bigint) => String(x).padStart(2, '0');
  const frac = FRACTION_DIGITS[unit] > 0 && fraction !== 0n ? `.${String(fraction).padStart(FRACTION_DIGITS[unit], '0')}` : '';
  return `${two(hh)}:${two(mm)}:${two(ss)}${frac}`;
}

function dateText(ms: bigint): string {
  const [days, rest] = split(ms, 86400000n);
  return rest === 0n ? dayText(days) : `${dayText(days)}T${clockText(rest, TimeUnit.MILLISECOND)}`;
}

function timestampText(value: bigint, unit: TimeUnit, utc: boolean): string {
  const [days, rest] = split(value, 86400n * PER_SECOND[unit]);
  return `${dayText(days)}T${clockText(rest, unit)}${utc ? 'Z' : ''}`;
}

function timeText(value: bigint, unit: TimeUnit): string {
  return clockText(value, unit);
}

function intervalText(d: Data, i: number): string {
  const unit = (d.type as unknown as { unit: IntervalUnit }).unit;
  const v = d.values as unknown as Int32Array;
  if (unit === IntervalUnit.YEAR_MONTH) return `{"months":${v[i]}}`;
  if (unit === IntervalUnit.DAY_TIME) return `{"days":${v[2 * i]},"milliseconds":${v[2 * i + 1]}}`;
  const nanos = (BigInt(v[4 * i + 3]) << 32n) | BigInt(v[4 * i + 2] >>> 0);
  return `{"months":${v[4 * i]},"days":${v[4 * i + 1]},"nanoseconds":${nanos}}`;
}
