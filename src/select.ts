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

function better(score: number, index: number, bestScore: number, bestIndex: number): boolean {
  return bestIndex < 0 || score > bestScore || (score === bestScore && index < bestIndex);
}

export class GroupSelector {
  private admIndex: number[] = [];
  private admScore: number[] = [];
  private anyIndex: number[] = [];
  private anyCci: number[] = [];
  private sizes: number[] = [];
  private admCounts: number[] = [];

  constructor(readonly tau: number) {}

  /** Offers candidate `index` of group `group`; `baseScore` NaN means "use CCI". */
  offer(group: number, index: number, cci: number, baseScore: number = Number.NaN): boolean {
    while (this.sizes.length <= group) {
      this.admIndex.push(-1); this.admScore.push(0); this.anyIndex.push(-1); this.anyCci.push(0);
      this.sizes.push(0); this.admCounts.push(0);
    }
    this.sizes[group]++;
    if (better(cci, index, this.anyCci[group], this.anyIndex[group])) { this.anyCci[group] = cci; this.anyIndex[group] = index; }
    const admissible = cci >= this.tau;
    if (admissible) {
      this.admCounts[group]++;
      const base = Number.isNaN(baseScore) ? cci : baseScore;
      if (better(base, index, this.admScore[group], this.admIndex[group])) { this.admScore[group] = base; this.admIndex[group] = index; }
    }
    return admissible;
  }

  get groupCount(): number { return this.sizes.length; }

  result(group: number): GroupSelection {
    if (group >= this.sizes.length || this.sizes[group] === 0) {
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
    return this.sizes.map((_, g) => this.result(g));
  }
}
