/** The id and group columns of a block: rows whose key is unusable, and each row's group index. */
import { Type, type Data } from 'apache-arrow';
import { MAX_KEY_INTEGER } from '../../core/input-ranges.js';
import type { GroupKeys } from '../group-keys.js';
import { dictionaryData, plainKey, viewBytes } from './cells.js';
import { allNull, offsetsOf, validOf } from './list-columns.js';

/** Flags rows whose key cannot be kept: a null (where refused) or a 64-bit integer beyond 2^53. */
export function keyProblems(d: Data, n: number, problem: Uint8Array, nullIsProblem: boolean): void {
  const valid = validOf(d);
  if (valid && nullIsProblem) for (let i = 0; i < n; i++) if (!valid(i)) problem[i] = 1;
  if (d.typeId === Type.Int && (d.values instanceof BigInt64Array || d.values instanceof BigUint64Array)) {
    const v = d.values;
    const max = BigInt(MAX_KEY_INTEGER);
    for (let i = 0; i < n; i++) if (v[i] > max || v[i] < -max) problem[i] = 1;
  }
}

/** Interns each row's group (strings from their UTF-8 bytes, dictionaries once per entry). */
export function internGroups(d: Data | null, n: number, groups: GroupKeys): Int32Array {
  const out = new Int32Array(n);
  if (d === null || allNull(d)) {
    out.fill(groups.indexOf(null));
    return out;
  }
  const valid = validOf(d);
  if (d.typeId === Type.Utf8 || d.typeId === Type.LargeUtf8) {
    const O = offsetsOf(d)!;
    const bytes = d.values as Uint8Array;
    let prevStart = -1,
      prevEnd = -1,
      prev = -1;
    for (let i = 0; i < n; i++) {
      if (valid && !valid(i)) {
        out[i] = groups.indexOf(null);
        continue;
      }
      const s = O[i],
        e = O[i + 1];
      // Candidates of one prompt are usually adjacent: compare with the previous key first.
      if (prev >= 0 && e - s === prevEnd - prevStart) {
        let same = true;
        for (let k = 0; k < e - s; k++)
          if (bytes[s + k] !== bytes[prevStart + k]) {
            same = false;
            break;
          }
        if (same) {
          out[i] = prev;
          continue;
        }
      }
      prev = out[i] = groups.indexOfUtf8(bytes, s, e);
      prevStart = s;
      prevEnd = e;
    }
    return out;
  }
  if (d.typeId === Type.Utf8View) {
    for (let i = 0; i < n; i++) {
      if (valid && !valid(i)) {
        out[i] = groups.indexOf(null);
        continue;
      }
      const v = viewBytes(d, i);
      out[i] = groups.indexOfUtf8(v.bytes, v.start, v.end);
    }
    return out;
  }
  if (d.typeId === Type.Dictionary) {
    const dict = dictionaryData(d);
    const entries = new Int32Array(dict.length).fill(-1);
    const keys = d.values as ArrayLike<number | bigint>;
    for (let i = 0; i < n; i++) {
      if (valid && !valid(i)) {
        out[i] = groups.indexOf(null);
        continue;
      }
      const k = Number(keys[i]);
      if (entries[k] < 0) entries[k] = groups.indexOf(plainKey(dict, k));
      out[i] = entries[k];
    }
    return out;
  }
  const v = d.values as ArrayLike<number | bigint>;
  for (let i = 0; i < n; i++) out[i] = valid && !valid(i) ? groups.indexOf(null) : groups.indexOf(Number(v[i]));
  return out;
}
