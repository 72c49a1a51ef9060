/**
 * Reused input buffers (an Arrow file read into shared memory, DuckDB's float lists): a batch
 * read into them stays valid until RING_SLOTS - 1 more batches have been read. Three: the batch
 * being scored, the one read ahead, one spare.
 */
export const RING_SLOTS = 3;
