/**
 * The columnar input schema (ECR-SPEC section 5.2): which Arrow types each column may have. A
 * file whose schema does not fit is refused before any row is read, naming the column and the
 * type it has; per-row problems (nulls, ragged lists, values out of range) are found later, per
 * block (block.ts).
 */
import { DataType, Precision, Type, type Field, type Schema } from 'apache-arrow';
import { InputError } from '../errors.js';

/** Every column a file may have; `meta` is carried (by ecr convert) and never scored. */
export const KNOWN_COLUMNS = ['id', 'group', 'steps', 'embeddings', 'expected', 'realized', 'policy', 'baseScore', 'meta'] as const;
export type ColumnName = (typeof KNOWN_COLUMNS)[number];

/** Position of each present column in the schema. */
export type ColumnIndex = Partial<Record<ColumnName, number>> & { steps: number };

const isFloat = (t: DataType) => t.typeId === Type.Float && (t as unknown as { precision: Precision }).precision !== Precision.HALF;
const isList = (t: DataType) => t.typeId === Type.List || t.typeId === Type.LargeList || t.typeId === Type.FixedSizeList;
const childType = (t: DataType): DataType => (t.children[0] as Field).type;

export const isFloatVector = (t: DataType) => isList(t) && isFloat(childType(t));
export const isFloatMatrix = (t: DataType) => isList(t) && isFloatVector(childType(t));
export const isStringType = (t: DataType) => t.typeId === Type.Utf8 || t.typeId === Type.LargeUtf8;
export const isKeyType = (t: DataType): boolean => isStringType(t) || t.typeId === Type.Int
  || (t.typeId === Type.Dictionary && isKeyType((t as unknown as { dictionary: DataType }).dictionary));

const EXPECTED: Record<Exclude<ColumnName, 'meta'>, { ok: (t: DataType) => boolean; words: string }> = {
  id: { ok: isKeyType, words: 'strings or integers (utf8, large_utf8, a dictionary of strings, or an integer type)' },
  group: { ok: isKeyType, words: 'strings or integers (utf8, large_utf8, a dictionary of strings, or an integer type)' },
  steps: { ok: isFloatMatrix, words: 'a list of lists of float32 or float64 per row (list<list<double>>, or fixed_size_list<fixed_size_list<float>>)' },
  embeddings: { ok: isFloatMatrix, words: 'a list of lists of float32 or float64 per row' },
  policy: { ok: isFloatMatrix, words: 'a list of lists of float32 or float64 per row' },
  expected: { ok: isFloatVector, words: 'a list of float32 or float64 per row' },
  realized: { ok: isFloatVector, words: 'a list of float32 or float64 per row' },
  baseScore: { ok: (t) => isFloat(t) || t.typeId === Type.Int, words: 'a float32, float64 or integer per row' },
};

/** Checks a file's schema and returns where each column is; an InputError names the column otherwise. */
export function checkSchema(schema: Schema): ColumnIndex {
  const index: Partial<Record<ColumnName, number>> = {};
  schema.fields.forEach((f, i) => {
    if (!(KNOWN_COLUMNS as readonly string[]).includes(f.name)) {
      throw new InputError(`column "${f.name}" is not a known column (known: ${KNOWN_COLUMNS.join(', ')}; put other data in "meta" or drop it)`);
    }
    const name = f.name as ColumnName;
    if (index[name] !== undefined) throw new InputError(`column "${name}" appears twice`);
    index[name] = i;
    if (name === 'meta') return;
    const rule = EXPECTED[name];
    if (!rule.ok(f.type)) throw new InputError(`column "${name}" has type ${String(f.type)}; it must hold ${rule.words}`);
  });
  if (index.steps === undefined) throw new InputError(`column "steps" is missing (a file has a "steps" column, ${EXPECTED.steps.words}; the file's columns: ${schema.fields.map((f) => f.name).join(', ') || 'none'})`);
  if ((index.expected === undefined) !== (index.realized === undefined)) {
    const [has, lacks] = index.expected !== undefined ? ['expected', 'realized'] : ['realized', 'expected'];
    throw new InputError(`column "${has}" is given without a "${lacks}" column (they come together)`);
  }
  return index as ColumnIndex;
}
