/**
 * Per-group selection (ECR-SPEC section 3, "Selection"): the admissible candidate with the
 * highest base score, else the candidate with the highest CCI; ties to the lower input index.
 * The accumulator accepts candidates in any order, so it serves one batch and a whole file
 * scored in several shape buckets alike.
 */

export type SelectionReason = 'best-admissible' | 'fallback';

export interface GroupSelection {
  /** Group index (as in Batch.groups). */
  group: number;
  /** Input index of the selected trajectory, -1 when the group has no members. */
  selectedIndex: number;
  reason: SelectionReason;
  size: number;
  admissibleCount: number;
}

/** Input indices are stored as uint32 with this value for "none", which bounds the input size. */
const NO_INDEX = 0xffffffff;

function better(score: number, index: number, bestScore: number, bestIndex: number): boolean {
  return bestIndex === NO_INDEX || score > bestScore || (score === bestScore && index < bestIndex);
}

/**
 * Per-group running best, in typed arrays indexed by group number (32 bytes a group; capacity
 * doubles, so up to 64 while growing): a stream with a million groups holds no object per group.
 */
export class GroupSelector {
  private capacity = 0;
  private count = 0;
  private admIndex = new Uint32Array(0);
  private anyIndex = new Uint32Array(0);
  private admScore = new Float64Array(0);
  private anyCci = new Float64Array(0);
  private sizes = new Uint32Array(0);
  private admCounts = new Uint32Array(0);

  constructor(readonly tau: number) {}

  /** Offers candidate `index` of group `group`; `baseScore` NaN means "use CCI". */
  offer(group: number, index: number, cci: number, baseScore: number = Number.NaN): boolean {
    if (!(index >= 0 && index < NO_INDEX)) throw new RangeError(`candidate index ${index} is outside [0, ${NO_INDEX})`);
    if (group >= this.count) this.grow(group + 1);
    this.sizes[group]++;
    if (better(cci, index, this.anyCci[group], this.anyIndex[group])) {
      this.anyCci[group] = cci;
      this.anyIndex[group] = index;
    }
    const admissible = cci >= this.tau;
    if (admissible) {
      this.admCounts[group]++;
      const base = Number.isNaN(baseScore) ? cci : baseScore;
      if (better(base, index, this.admScore[group], this.admIndex[group])) {
        this.admScore[group] = base;
        this.admIndex[group] = index;
      }
    }
    return admissible;
  }

  get groupCount(): number {
    return this.count;
  }

  result(group: number): GroupSelection {
    if (group >= this.count || this.sizes[group] === 0) {
      return { group, selectedIndex: -1, reason: 'fallback', size: 0, admissibleCount: 0 };
    }
    const adm = this.admCounts[group] > 0;
    return {
      group,
      selectedIndex: adm ? this.admIndex[group] : this.anyIndex[group],
      reason: adm ? 'best-admissible' : 'fallback',
      size: this.sizes[group],
      admissibleCount: this.admCounts[group],
    };
  }

  results(): GroupSelection[] {
    return Array.from({ length: this.count }, (_, g) => this.result(g));
  }

  /** The selected input index of every non-empty group, ascending: one uint32 a group. */
  selectedIndices(): Uint32Array {
    const out = new Uint32Array(this.count);
    let k = 0;
    for (let g = 0; g < this.count; g++) {
      if (this.sizes[g] > 0) out[k++] = this.admCounts[g] > 0 ? this.admIndex[g] : this.anyIndex[g];
    }
    return out.subarray(0, k).sort();
  }

  private grow(count: number): void {
    if (count > this.capacity) {
      const capacity = Math.max(16, count, this.capacity * 2);
      const widen = <T extends Uint32Array | Float64Array>(a: T, fill: number): T => {
        const next = new (a.constructor as new (n: number) => T)(capacity);
        next.set(a);
        if (fill !== 0) next.fill(fill, a.length);
        return next;
      };
      this.admIndex = widen(this.admIndex, NO_INDEX);
      this.anyIndex = widen(this.anyIndex, NO_INDEX);
      this.admScore = widen(this.admScore, 0);
      this.anyCci = widen(this.anyCci, 0);
      this.sizes = widen(this.sizes, 0);
      this.admCounts = widen(this.admCounts, 0);
      this.capacity = capacity;
    }
    this.count = count;
  }
}
