/** The adapter kinds discovery knows, and what a caller may ask for. */
export type AdapterKind = 'native' | 'opengles';
export type AdapterPreference = AdapterKind | 'auto';
export const ADAPTER_PREFERENCES: readonly AdapterPreference[] = ['auto', 'native', 'opengles'];
