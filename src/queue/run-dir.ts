/**
 * The files of one distributed run, in a directory under --work-dir that every worker reads and
 * writes: the inputs (hard links, or copies across filesystems, so the bytes the plan measured
 * cannot change underneath the workers), the configuration, and one result file per shard.
 * The directory is removed when the run ends, whatever the outcome.
 */
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { describeFsError, OutputWriteError, type Sink } from '../cli/io.js';

export interface RunDir {
  /** The run's id (the directory's name) and absolute path. */
  id: string;
  dir: string;
  config: string;
  shardsDir: string;
  remove(): Promise<void>;
}

export async function createRunDir(workDir: string, config: unknown): Promise<RunDir> {
  const root = path.resolve(workDir);
  const st = await stat(root).catch((err) => { throw new UsageError(`--work-dir ${workDir}: ${describeFsError(err)}`); });
  if (!st.isDirectory()) throw new UsageError(`--work-dir ${workDir}: not a directory`);
  let dir: string;
  try {
    dir = await mkdtemp(path.join(root, 'ecr-run-'));
  } catch (err) {
    throw new UsageError(`--work-dir ${workDir}: cannot create a run directory there: ${describeFsError(err)}`);
  }
  const shardsDir = path.join(dir, 'shards');
  const configFile = path.join(dir, 'config.json');
  try {
    await mkdir(shardsDir);
    await writeFile(configFile, JSON.stringify(config));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new OutputWriteError(`the run directory ${dir}`, err);
  }
  return { id: path.basename(dir), dir, config: configFile, shardsDir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Places input `index` in the run directory: a hard link when possible, else a copy. */
export async function placeInput(run: RunDir, file: string, index: number): Promise<string> {
  const target = path.join(run.dir, `input-${index}.jsonl`);
  try {
    await link(path.resolve(file), target);
  } catch {
    // EXDEV (another filesystem), EPERM (a filesystem without hard links, protected_hardlinks).
    try {
      await copyFile(path.resolve(file), target);
    } catch (err) {
      throw new OutputWriteError(`a copy of ${file} in ${run.dir}`, err);
    }
  }
  return target;
}

/** Appends the bytes of `files`, in order, to `sink` (the input's output being written). */
export async function concatenateInto(files: readonly string[], sink: Sink): Promise<void> {
  const out = sink.stream;
  for (const file of files) {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
      if (!out.write(chunk)) await once(out, 'drain');
    }
  }
}
