/**
 * "1 trajectory", "2 trajectories": a count with its noun in the right number. The nouns are
 * fixed in the code, so an explicit singular/plural pair is exact without an inflection library.
 */
export function plural(n: number, singular: string, pluralForm = `${singular}s`, shown: string = String(n)): string {
  return `${shown} ${n === 1 ? singular : pluralForm}`;
}
