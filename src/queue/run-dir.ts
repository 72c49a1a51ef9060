/**
 * The files of one distributed run, in a directory under --work-dir that every worker reads and
 * writes: the inputs (hard links, or copies across filesystems, so the bytes the plan measured
 * cannot change underneath the workers unless the file is rewritten in place), the
 * configuration, the run's manifest (`run.json`: its inputs, outputs and shard jobs, what
 * `--resume` needs), its owner (`owner.json`, touched as a heartbeat while the submitter lives)
 * and one result file per shard.
 *
 * The submitter removes the directory when the run ends, whatever the outcome, unless it gives up
 * waiting (`--timeout`) with shards still queued: the run can then be collected with `--resume`.
 * A submitter that dies without cleaning up (SIGKILL, a lost machine) leaves an orphan: its
 * heartbeat stops, and the next `ecr score --queue` on the same work directory removes it once
 * the heartbeat is older than `--orphan-grace`.
 */
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { describeFsError } from '../engine/io/fs-error.js';
import { OutputWriteError, type Sink } from '../engine/io/sink.js';
import type { ShardJob } from './shard-job.js';

export const RUN_PREFIX = 'ecr-run-';
/** How often the owner touches owner.json; a run whose owner is alive is never older than this. */
export const HEARTBEAT_MS = 5000;
/**
 * A heartbeat younger than this means the owner may be alive: --resume refuses such a run unless
 * the owner is on this machine and its process is gone. Generous, for the attribute caching of a
 * shared filesystem (NFS caches attributes up to a minute by default).
 */
export const LIVE_OWNER_MS = 120_000;

export interface RunDir {
  /** The run's id (the directory's name) and absolute path. */
  id: string;
  dir: string;
  config: string;
  shardsDir: string;
  remove(): Promise<void>;
}

/** One input of a run, as its manifest keeps it. */
export interface RunInput {
  /** As the user named it (messages), and where its output goes. */
  name: string;
  output: string;
  /** Its bytes in the run directory, and their size and mtime when the run was planned. */
  placed: string;
  size: number;
  mtimeMs: number;
}

export interface RunManifest {
  format: 1;
  created: string;
  queueName: string;
  inputs: RunInput[];
  jobs: ShardJob[];
}

interface Owner {
  host: string;
  pid: number;
  since: string;
}

function runDirOf(root: string, id: string): RunDir {
  const dir = path.join(root, id);
  return { id, dir, config: path.join(dir, 'config.json'), shardsDir: path.join(dir, 'shards'), remove: () => rm(dir, { recursive: true, force: true }) };
}

async function checkWorkDir(workDir: string): Promise<string> {
  const root = path.resolve(workDir);
  const st = await stat(root).catch((err) => {
    throw new UsageError(`--work-dir ${workDir}: ${describeFsError(err)}`);
  });
  if (!st.isDirectory()) throw new UsageError(`--work-dir ${workDir}: not a directory`);
  return root;
}

export async function createRunDir(workDir: string, config: unknown): Promise<RunDir> {
  const root = await checkWorkDir(workDir);
  let dir: string;
  try {
    dir = await mkdtemp(path.join(root, RUN_PREFIX));
  } catch (err) {
    throw new UsageError(`--work-dir ${workDir}: cannot create a run directory there: ${describeFsError(err)}`);
  }
  const run = runDirOf(root, path.basename(dir));
  try {
    await writeOwner(run);
    await mkdir(run.shardsDir);
    await writeFile(run.config, JSON.stringify(config));
  } catch (err) {
    await run.remove();
    throw new OutputWriteError(`the run directory ${dir}`, err);
  }
  return run;
}

/** Makes this process the run's owner (a new run, or one taken over by --resume). */
async function writeOwner(run: RunDir): Promise<void> {
  const owner: Owner = { host: os.hostname(), pid: process.pid, since: new Date().toISOString() };
  const file = path.join(run.dir, 'owner.json');
  await writeFile(`${file}.tmp`, JSON.stringify(owner));
  await rename(`${file}.tmp`, file);
}

/** Touches owner.json every HEARTBEAT_MS while the run is this process's; returns the stop. */
export function startHeartbeat(run: RunDir): () => void {
  const file = path.join(run.dir, 'owner.json');
  const timer = setInterval(() => {
    const now = new Date();
    // A failed touch (the directory removed under us, a full disk) costs only the heartbeat.
    utimes(file, now, now).catch(() => {});
  }, HEARTBEAT_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Writes the manifest atomically (a reader never sees half of it). */
export async function writeManifest(run: RunDir, manifest: RunManifest): Promise<void> {
  const file = path.join(run.dir, 'run.json');
  try {
    await writeFile(`${file}.tmp`, JSON.stringify(manifest));
    await rename(`${file}.tmp`, file);
  } catch (err) {
    throw new OutputWriteError(`the manifest of run ${run.id}`, err);
  }
}

/** What is known of a run's owner: where it ran, its last heartbeat, whether it is known to be gone. */
export interface OwnerState {
  owner: Owner | null;
  /** Milliseconds since the last heartbeat (or since the directory changed, without owner.json). */
  silentMs: number;
  /** True when the owner is surely gone (on this machine and its process is not running), or silent past LIVE_OWNER_MS. */
  gone: boolean;
}

function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function ownerState(dir: string, now = Date.now()): Promise<OwnerState> {
  const file = path.join(dir, 'owner.json');
  let owner: Owner | null = null;
  let beat: number;
  try {
    owner = JSON.parse(await readFile(file, 'utf8')) as Owner;
    beat = (await stat(file)).mtimeMs;
  } catch {
    // A run directory of an older version, or one whose owner died before writing owner.json.
    beat = (await stat(dir)).mtimeMs;
  }
  const silentMs = Math.max(0, now - beat);
  const here = owner !== null && owner.host === os.hostname();
  const gone = here ? owner!.pid !== process.pid && !processRunning(owner!.pid) : silentMs > LIVE_OWNER_MS;
  return { owner, silentMs, gone };
}

const describeOwner = (s: OwnerState) => (s.owner ? `${s.owner.host}:${s.owner.pid}` : 'an unknown owner');
const ago = (ms: number) =>
  ms < 120_000 ? `${Math.round(ms / 1000)} s` : ms < 7_200_000 ? `${Math.round(ms / 60_000)} min` : `${(ms / 3_600_000).toFixed(1)} h`;

async function sizeOf(p: string): Promise<number> {
  const st = await stat(p).catch(() => null);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const e of await readdir(p).catch(() => [] as string[])) n += await sizeOf(path.join(p, e));
  return n;
}

/**
 * The orphan sweep: removes the runs in `workDir` whose owner has been silent for more than
 * `graceMs` (never one whose owner is running on this machine), and tells of the orphans still
 * within their grace, which --resume can collect. 0 disables it.
 */
export async function sweepOrphans(
  workDir: string,
  graceMs: number,
  log: (line: string) => void,
  resumeCommand: (id: string) => string,
  except?: string,
): Promise<void> {
  const root = path.resolve(workDir);
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => n.startsWith(RUN_PREFIX) && n !== except);
  } catch {
    return; // checked (and reported) when the run directory is made
  }
  for (const id of names) {
    const dir = path.join(root, id);
    let state: OwnerState;
    try {
      const st = await stat(dir);
      // The default work directory, TMPDIR, is shared by every user of the machine: only this user's runs.
      if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid())) continue;
      state = await ownerState(dir);
    } catch {
      continue; // removed meanwhile by its owner or another sweep
    }
    const here = state.owner !== null && state.owner.host === os.hostname();
    if (here && !state.gone) continue;
    if (graceMs > 0 && state.silentMs > graceMs) {
      const bytes = await sizeOf(dir);
      try {
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch (err) {
        // A worker still writing a shard of it, say: the next sweep tries again.
        log(`could not remove the orphaned run ${id} in ${root}: ${describeFsError(err)}`);
        continue;
      }
      log(
        `removed the orphaned run ${id} in ${root} (owner ${describeOwner(state)}, silent for ${ago(state.silentMs)} > --orphan-grace; ${(bytes / 1e6).toFixed(1)} MB)`,
      );
    } else if (state.gone) {
      log(
        `the run ${id} in ${root} has no owner (${describeOwner(state)}, silent for ${ago(state.silentMs)}); collect it with: ${resumeCommand(id)}` +
          (graceMs > 0 ? ` (removed once silent for ${ago(graceMs)}, --orphan-grace)` : ''),
      );
    }
  }
}

/** The runs in `workDir`, for a message naming what --resume could take. */
async function listRuns(root: string): Promise<string> {
  const names = (await readdir(root).catch(() => [] as string[])).filter((n) => n.startsWith(RUN_PREFIX));
  return names.length === 0 ? 'there is none' : `there are: ${names.join(', ')}`;
}

/**
 * Opens run `id` of `workDir` for --resume and makes this process its owner: refused while its
 * owner may still be alive, or when it has no manifest (it died while planning: nothing was queued
 * for good, run it again).
 */
export async function adoptRunDir(workDir: string, id: string): Promise<{ run: RunDir; manifest: RunManifest }> {
  const root = await checkWorkDir(workDir);
  if (!id.startsWith(RUN_PREFIX) || id.includes('/') || id.includes(path.sep)) {
    throw new UsageError(`--resume ${id}: expected a run id (${RUN_PREFIX}...) in --work-dir ${workDir}; ${await listRuns(root)}`);
  }
  const run = runDirOf(root, id);
  const exists = await stat(run.dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!exists) throw new UsageError(`--resume ${id}: no such run in --work-dir ${root}; ${await listRuns(root)}`);
  const state = await ownerState(run.dir);
  if (!state.gone) {
    throw new UsageError(
      `--resume ${id}: its owner ${describeOwner(state)} may still be running (heartbeat ${ago(state.silentMs)} ago); stop it first, or wait until it has been silent for ${ago(LIVE_OWNER_MS)}`,
    );
  }
  let manifest: RunManifest;
  try {
    manifest = JSON.parse(await readFile(path.join(run.dir, 'run.json'), 'utf8')) as RunManifest;
  } catch (err) {
    throw new UsageError(`--resume ${id}: the run has no readable manifest (${describeFsError(err)}): its submitter stopped before queueing it; run it again`);
  }
  if (manifest.format !== 1 || !Array.isArray(manifest.jobs) || !Array.isArray(manifest.inputs)) {
    throw new UsageError(`--resume ${id}: its manifest is of another ecr-engine version`);
  }
  try {
    await writeOwner(run);
  } catch (err) {
    throw new OutputWriteError(`the owner file of run ${id}`, err);
  }
  return { run, manifest };
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
