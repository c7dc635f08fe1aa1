/**
 * Snapshot and backfill progress: the jobs (one per table to read), where each one is (the last key of its last
 * finished chunk), and counts for the progress bar. Immutable values and pure transitions: the producer attaches the
 * state current at each transaction boundary to that boundary, so the state saved with a checkpoint is exactly the
 * state at that binlog position (a chunk counts as finished only once its rows are before the checkpoint).
 * Saved as JSON in the checkpoint item (attribute `snapshot`); read by `npx cdc status` / `backfill`.
 */
import type { KeyValue } from './chunk-query';

/** `resync`: the whole table read again after a `resync` event (`npx cdc resync`, or a change the replica cannot follow). */
export type SnapshotJobKind = 'initial' | 'added' | 'backfill' | 'resync';
export type SnapshotJobStatus = 'pending' | 'running' | 'done' | 'failed';

export interface SnapshotJob {
  /**
   * `initial:<db>.<table>`, `added:<db>.<table>:<time>`, the backfill or resync request id from the signal table, or
   * `resync:<db>.<table>@<position>` for a resync the producer started itself.
   */
  readonly id: string;
  readonly kind: SnapshotJobKind;
  readonly db: string;
  readonly table: string;
  readonly where?: string;
  readonly status: SnapshotJobStatus;
  /** Last primary key of the last finished chunk; absent before the first chunk. */
  readonly lastKey?: readonly KeyValue[];
  /**
   * Position of the first finished chunk's low watermark: a key of the table whose last change is older than it and
   * that no chunk of the job read is gone from the source (the job's closing whole-table `range` event).
   */
  readonly lowPosition?: string;
  /** Rows read by finished chunks. */
  readonly rowsRead: number;
  /** Rows emitted as `read` events (rows read minus rows that changed while their chunk was read). */
  readonly rowsEmitted: number;
  /** The optimizer's estimate when the job started (grows with rowsRead when it was too low). */
  readonly rowsEstimate: number;
  readonly chunks: number;
  readonly requestedAt: number;
  readonly startedAt?: number;
  readonly updatedAt: number;
  readonly finishedAt?: number;
  readonly error?: string;
}

export interface SnapshotState {
  readonly jobs: readonly SnapshotJob[];
  /**
   * Binlog position of the newest backfill request acted on: a request read again at or before it (the checkpoint
   * was moved back with `set-position`) is not run a second time, even once its job has been pruned.
   */
  readonly requestsUpTo?: string;
}

export const EMPTY_STATE: SnapshotState = { jobs: [] };

/** Finished jobs kept for `status` (the checkpoint item stays far below DynamoDB's 400 KB). */
const KEEP_FINISHED = 20;

export function newJob(
  kind: SnapshotJobKind,
  id: string,
  db: string,
  table: string,
  now: number,
  where?: string,
): SnapshotJob {
  return {
    id,
    kind,
    db,
    table,
    ...(where ? { where } : {}),
    status: 'pending',
    rowsRead: 0,
    rowsEmitted: 0,
    rowsEstimate: 0,
    chunks: 0,
    requestedAt: now,
    updatedAt: now,
  };
}

/** Adds jobs whose id is not known yet (a request read twice after a restart is one job). */
export function addJobs(state: SnapshotState, jobs: readonly SnapshotJob[]): SnapshotState {
  const known = new Set(state.jobs.map((j) => j.id));
  const fresh = jobs.filter((j) => !known.has(j.id));
  return fresh.length === 0 ? state : prune({ ...state, jobs: [...state.jobs, ...fresh] });
}

/** The job to work on: the running one, else the oldest pending one. */
export function nextJob(state: SnapshotState): SnapshotJob | undefined {
  return state.jobs.find((j) => j.status === 'running') ?? state.jobs.find((j) => j.status === 'pending');
}

function update(state: SnapshotState, id: string, f: (j: SnapshotJob) => SnapshotJob): SnapshotState {
  return prune({ ...state, jobs: state.jobs.map((j) => (j.id === id ? f(j) : j)) });
}

/** Whether a backfill request at this position is new (not at or before the newest one acted on). */
export function isNewRequest(state: SnapshotState, position: string): boolean {
  return state.requestsUpTo === undefined || position > state.requestsUpTo;
}

export function requestSeen(state: SnapshotState, position: string): SnapshotState {
  return isNewRequest(state, position) ? { ...state, requestsUpTo: position } : state;
}

export function startJob(state: SnapshotState, id: string, estimate: number, now: number): SnapshotState {
  return update(state, id, (j) => ({
    ...j,
    status: 'running',
    rowsEstimate: Math.max(estimate, j.rowsRead),
    startedAt: j.startedAt ?? now,
    updatedAt: now,
  }));
}

export function failJob(state: SnapshotState, id: string, error: string, now: number): SnapshotState {
  return update(state, id, (j) => ({ ...j, status: 'failed', error, updatedAt: now, finishedAt: now }));
}

export interface FinishedChunk {
  readonly lastKey: readonly KeyValue[] | undefined;
  /** Position of the chunk's low watermark. */
  readonly lowPosition?: string;
  readonly read: number;
  readonly emitted: number;
  /** The chunk was shorter than asked: the table (or range) is done. */
  readonly last: boolean;
}

export function finishChunk(state: SnapshotState, id: string, c: FinishedChunk, now: number): SnapshotState {
  return update(state, id, (j) => {
    const rowsRead = j.rowsRead + c.read;
    return {
      ...j,
      ...(c.lastKey ? { lastKey: c.lastKey } : {}),
      ...(j.lowPosition === undefined && c.lowPosition !== undefined ? { lowPosition: c.lowPosition } : {}),
      rowsRead,
      rowsEmitted: j.rowsEmitted + c.emitted,
      rowsEstimate: c.last ? rowsRead : Math.max(j.rowsEstimate, rowsRead),
      chunks: j.chunks + 1,
      updatedAt: now,
      ...(c.last ? { status: 'done' as const, finishedAt: now } : {}),
    };
  });
}

/** Keeps every unfinished job and the newest finished ones. */
function prune(state: SnapshotState): SnapshotState {
  const finished = state.jobs.filter((j) => j.status === 'done' || j.status === 'failed');
  if (finished.length <= KEEP_FINISHED) return state;
  const drop = new Set(
    [...finished]
      .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0))
      .slice(0, finished.length - KEEP_FINISHED)
      .map((j) => j.id),
  );
  return { ...state, jobs: state.jobs.filter((j) => !drop.has(j.id)) };
}

export function parseState(json: string | undefined): SnapshotState {
  if (!json) return EMPTY_STATE;
  const doc = JSON.parse(json) as { jobs?: SnapshotJob[]; requestsUpTo?: string };
  return {
    jobs: Array.isArray(doc.jobs) ? doc.jobs : [],
    ...(typeof doc.requestsUpTo === 'string' ? { requestsUpTo: doc.requestsUpTo } : {}),
  };
}

export function serializeState(state: SnapshotState): string {
  return JSON.stringify({ jobs: state.jobs, ...(state.requestsUpTo ? { requestsUpTo: state.requestsUpTo } : {}) });
}

export interface JobProgress {
  /** 0..1 */
  readonly fraction: number;
  readonly rowsPerS: number;
  /** Seconds to go at the current rate; undefined before there is a rate. */
  readonly etaS: number | undefined;
}

/** Progress of a job for humans and metrics (rate over the job's run so far). */
export function progressOf(job: SnapshotJob, now: number): JobProgress {
  const total = Math.max(job.rowsEstimate, job.rowsRead, 1);
  const fraction = job.status === 'done' ? 1 : Math.min(1, job.rowsRead / total);
  const elapsedS = ((job.finishedAt ?? now) - (job.startedAt ?? now)) / 1000;
  const rowsPerS = elapsedS > 0 ? job.rowsRead / elapsedS : 0;
  const etaS = job.status === 'done' ? 0 : rowsPerS > 0 ? Math.max(0, (total - job.rowsRead) / rowsPerS) : undefined;
  return { fraction, rowsPerS, etaS };
}

/** The snapshot gauges (SnapshotJobsPending, SnapshotRowsRemaining, SnapshotEtaSeconds of the running job). */
export function snapshotGauges(
  state: SnapshotState,
  now: number,
): { jobsPending: number; rowsRemaining: number; etaS: number | undefined } {
  const unfinished = state.jobs.filter((j) => j.status === 'pending' || j.status === 'running');
  const running = unfinished.find((j) => j.status === 'running');
  return {
    jobsPending: unfinished.length,
    rowsRemaining: unfinished.reduce((n, j) => n + Math.max(0, j.rowsEstimate - j.rowsRead), 0),
    etaS: running ? progressOf(running, now).etaS : undefined,
  };
}
