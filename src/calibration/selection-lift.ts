/**
 * Selection lift, the number ECR exists for: how often the answer ECR selects per group is
 * correct, against taking the first candidate and against taking one at random (its expected
 * accuracy, the group's share of correct candidates), with bootstrap intervals over groups.
 */
import { GroupSelector } from '../core/select.js';
import { bootstrapInterval, type Interval } from './statistics.js';

/** The selected record index per group (-1 for groups with no record in `include`). */
export function selectPerGroup(
  cci: ArrayLike<number>,
  groupIndex: ArrayLike<number>,
  groupCount: number,
  tau: number,
  baseScore: ArrayLike<number>,
  include: (i: number) => boolean = () => true,
): { selected: Int32Array; fallback: Uint8Array } {
  const selector = new GroupSelector(tau);
  for (let i = 0; i < cci.length; i++) if (include(i)) selector.offer(groupIndex[i], i, cci[i], baseScore[i]);
  const selected = new Int32Array(groupCount).fill(-1);
  const fallback = new Uint8Array(groupCount);
  for (let g = 0; g < Math.min(groupCount, selector.groupCount); g++) {
    const r = selector.result(g);
    selected[g] = r.selectedIndex;
    fallback[g] = r.selectedIndex >= 0 && r.reason === 'fallback' ? 1 : 0;
  }
  return { selected, fallback };
}

export interface Estimate {
  value: number;
  interval: Interval | null;
}

export interface SelectionLift {
  /** Groups used: every candidate labelled, at least two candidates. */
  groups: number;
  selected: Estimate;
  first: Estimate;
  random: Estimate;
  liftOverFirst: Estimate;
  liftOverRandom: Estimate;
}

/**
 * `members[g]` lists group g's record indices in input order; groups with an unlabelled member
 * or a single candidate are left out (there is nothing to choose between).
 */
export function selectionLift(
  members: readonly number[][],
  selected: Int32Array,
  labels: readonly (boolean | null)[],
  replicates: number,
  seed: number,
): SelectionLift | null {
  const sel: number[] = [],
    first: number[] = [],
    random: number[] = [];
  members.forEach((m, g) => {
    if (m.length < 2 || selected[g] < 0 || m.some((i) => labels[i] === null)) return;
    sel.push(labels[selected[g]] ? 1 : 0);
    first.push(labels[m[0]] ? 1 : 0);
    random.push(m.filter((i) => labels[i]).length / m.length);
  });
  if (sel.length === 0) return null;
  const mean = (xs: number[], s?: Int32Array) => {
    let t = 0;
    if (!s) {
      for (const x of xs) t += x;
      return t / xs.length;
    }
    for (const i of s) t += xs[i];
    return t / s.length;
  };
  const est = (f: (s?: Int32Array) => number, k: number): Estimate => ({
    value: f(),
    interval: bootstrapInterval(sel.length, (s) => f(s), replicates, seed + k),
  });
  return {
    groups: sel.length,
    selected: est((s) => mean(sel, s), 1),
    first: est((s) => mean(first, s), 2),
    random: est((s) => mean(random, s), 3),
    liftOverFirst: est((s) => mean(sel, s) - mean(first, s), 4),
    liftOverRandom: est((s) => mean(sel, s) - mean(random, s), 5),
  };
}
