/**
 * The columnar input schema (ECR-SPEC section 5.2): which Arrow types each column may have. A
 * file whose schema does not fit is refused before any row is read, naming the column and the
 * type it has; per-row problems (nulls, ragged lists, values out of range) are found later, per
 * block (block.ts).
 */
import { DataType, Type, type Field, type Schema } from 'apache-arrow';
import { InputError } from '../../core/errors.js';

/** Every column a file may have; `meta` is carried (by ecr convert) and never scored. */
export const KNOWN_COLUMNS = ['id', 'group', 'steps', 'embeddings', 'expected', 'realized', 'policy', 'baseScore', 'meta'] as const;
export type ColumnName = (typeof KNOWN_COLUMNS)[number];

/** Position of each present column in the schema. */
export type ColumnIndex = Partial<Record<ColumnName, number>> & { steps: number };

/** Any integer (signed or unsigned, 8 to 64 bits) or float (16, 32 or 64 bits) type: JSONL numbers are untyped, so any width holding valid values is accepted. */
export const isNumberType = (t: DataType) => t.typeId === Type.Float || t.typeId === Type.Int;
const isList = (t: DataType) => t.typeId === Type.List || t.typeId === Type.LargeList || t.typeId === Type.FixedSizeList;
const childType = (t: DataType): DataType => (t.children[0] as Field<DataType>).type;

export const isNumberVector = (t: DataType) => isList(t) && isNumberType(childType(t));
export const isNumberMatrix = (t: DataType) => isList(t) && isNumberVector(childType(t));
export const isStringType = (t: DataType) => t.typeId === Type.Utf8 || t.typeId === Type.LargeUtf8 || t.typeId === Type.Utf8View;
export const isKeyType = (t: DataType): boolean =>
  isStringType(t) || t.typeId === Type.Int || (t.typeId === Type.Dictionary && isKeyType((t as unknown as { dictionary: DataType }).dictionary));

const NUMBERS = 'any integer or float type';
const EXPECTED: Record<Exclude<ColumnName, 'meta'>, { ok: (t: DataType) => boolean; words: string }> = {
  id: { ok: isKeyType, words: 'strings or integers (utf8, large_utf8, utf8_view, a dictionary of strings, or an integer type)' },
  group: { ok: isKeyType, words: 'strings or integers (utf8, large_utf8, utf8_view, a dictionary of strings, or an integer type)' },
  steps: {
    ok: isNumberMatrix,
    words: `a list of lists of numbers per row (${NUMBERS}: list<list<double>>, list<list<int64>>, or fixed_size_list<fixed_size_list<float>>)`,
  },
  embeddings: { ok: isNumberMatrix, words: `a list of lists of numbers per row (${NUMBERS})` },
  policy: { ok: isNumberMatrix, words: `a list of lists of numbers per row (${NUMBERS})` },
  expected: { ok: isNumberVector, words: `a list of numbers per row (${NUMBERS})` },
  realized: { ok: isNumberVector, words: `a list of numbers per row (${NUMBERS})` },
  baseScore: { ok: isNumberType, words: `a number per row (${NUMBERS})` },
};

/** Checks a file's schema and returns where each column is; an InputError names the column otherwise. */
export function checkSchema(schema: Schema): ColumnIndex {
  const index: Partial<Record<ColumnName, number>> = {};
  schema.fields.forEach((f: Field<DataType>, i) => {
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
  if (index.steps === undefined)
    throw new InputError(
      `column "steps" is missing (a file has a "steps" column, ${EXPECTED.steps.words}; the file's columns: ${schema.fields.map((f) => f.name).join(', ') || 'none'})`,
    );
  if ((index.expected === undefined) !== (index.realized === undefined)) {
    const [has, lacks] = index.expected !== undefined ? ['expected', 'realized'] : ['realized', 'expected'];
    throw new InputError(`column "${has}" is given without a "${lacks}" column (they come together)`);
  }
  return index as ColumnIndex;
}
