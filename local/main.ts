/**
 * `npm run local [-- up|down|status] [--load <rows/s>] [--apply stream|lake|both] [--dashboard-port <port>]`: the whole
 * pipeline on this machine, and its dashboard page on loopback (local/dashboard/; port 4300, or any free one when it
 * is taken; `--dashboard-port 0`: any free one).
 *   (no verb)  foreground, live status line, Ctrl-C stops everything cleanly
 *   up         start in the background, return when ready (writes .local/endpoints.json)
 *   status     positions, lag and per-table counts of a running pipeline
 *   down       stop a background pipeline
 * `--apply`: which path merges into the replicas (local/pipeline.ts `applySource`): `stream` (default, as deployed),
 * `lake` (the Firehose stand-in's objects), or `both`.
 * State lives in .local/ (or $LOCAL_STATE_DIR, which the CLI test uses to stay away from a developer's pipeline).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseQuarantine } from '../containers/producer/src/table-quarantine';
import { type LocalDashboard, startDashboard } from './dashboard/dashboard-server';
import { LocalMetrics } from './dashboard/local-metrics';
import { FIREHOSE_STATE_FILE_NAME, STREAM_APPLY_STATE_FILE_NAME } from './firehose-dead-letters';
import { startLoad } from './load-generator';
import { APPLY_SOURCES, type ApplySource, type Endpoints, producerDown, ROOT, startPipeline } from './pipeline';
import { localAwsClientConfig } from './services/aws-config';
import { waitFor } from './services/process';
import { ensureSystemPackages } from './services/system-packages';

// The AWS SDK warns on every client it makes under Node 20 that its releases after January 2027 need Node 22; the
// README says once which Node versions this project runs on, so the commands and the processes they start (which
// inherit this environment) do not repeat it in their output. An explicit setting in the environment wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const DIR = process.env.LOCAL_STATE_DIR ?? join(ROOT, '.local');
const ENDPOINTS = join(DIR, 'endpoints.json');
const PID = join(DIR, 'supervisor.pid');
/** Written by the running pipeline every second; read by `status`. */
const STATUS = join(DIR, 'status.json');

function usage(msg?: string): never {
  if (msg) process.stderr.write(`${msg}\n`);
  process.stderr.write(
    'usage: npm run local [-- up|down|status] [--load <rows/s>] [--apply stream|lake|both] [--dashboard-port <port>]\n',
  );
  process.exit(2);
}

const args = process.argv.slice(2);
const loadIdx = args.indexOf('--load');
let load = 0;
if (loadIdx >= 0) {
  load = Number(args[loadIdx + 1]);
  if (!Number.isFinite(load) || load <= 0)
    usage(`--load needs a positive number of rows/s, got ${JSON.stringify(args[loadIdx + 1] ?? null)}`);
}
const applyIdx = args.indexOf('--apply');
let applySource: ApplySource = 'stream';
if (applyIdx >= 0) {
  const v = args[applyIdx + 1];
  if (!APPLY_SOURCES.includes(v as ApplySource))
    usage(`--apply needs one of ${APPLY_SOURCES.join(', ')}, got ${JSON.stringify(v ?? null)}`);
  applySource = v as ApplySource;
}
const portIdx = args.indexOf('--dashboard-port');
let dashboardPort: number | undefined;
if (portIdx >= 0) {
  dashboardPort = Number(args[portIdx + 1]);
  if (!Number.isInteger(dashboardPort) || dashboardPort < 0 || dashboardPort > 65535)
    usage(`--dashboard-port needs a port number (0: any free port), got ${JSON.stringify(args[portIdx + 1] ?? null)}`);
}
const verb = args.find((a, i) => !a.startsWith('--') && !/^\d/.test(a) && args[i - 1] !== '--apply') ?? 'run';
if (!['run', 'up', 'down', 'status', 'supervise'].includes(verb)) usage(`unknown verb ${JSON.stringify(verb)}`);

/** Readers (`up`, `status`, scripts) never see a half-written file. */
function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/** Whether a process exists and is not a zombie (an exited child its parent has not reaped yet). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/**
 * Whether a process is one this state directory started: pids are reused (here pid_max is 32768, and a test run
 * starts thousands of processes), so a pid file left by a supervisor that died may name anyone's process by now, a
 * test's MariaDB server included. Ours carry LOCAL_STATE_DIR=<this directory> in their environment (the supervisor
 * is spawned with it, and its children inherit it). Without /proc, trust the pid.
 */
function ours(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`LOCAL_STATE_DIR=${DIR}`);
  } catch {
    return !existsSync('/proc/self');
  }
}

function running(): number | undefined {
  if (!existsSync(PID)) return undefined;
  const pid = Number(readFileSync(PID, 'utf8'));
  return exists(pid) && ours(pid) ? pid : undefined;
}

/** The supervisor (`supervise`, spawned detached by `up` and by the foreground mode): owns the whole pipeline. */
async function serve(): Promise<void> {
  ensureSystemPackages((l) => process.stderr.write(`${l}\n`));
  mkdirSync(DIR, { recursive: true });
  // First, so that `down` can stop a pipeline that is still starting.
  writeFileSync(PID, String(process.pid));
  // The dashboard reads the pipeline's own metrics from its processes' lines, from the first line on.
  const metrics = new LocalMetrics();
  const p = await startPipeline({
    dir: DIR,
    applySource,
    log: (l) => process.stderr.write(`${new Date().toISOString()} ${l}\n`),
    onChildLine: (part, line, at) => metrics.ingest(part, line, at),
  });
  let dashboard: LocalDashboard;
  try {
    dashboard = await startDashboard({
      metrics,
      parts: () => p.parts(),
      endpoints: p.endpoints,
      endpointsFile: ENDPOINTS,
      stateDir: DIR,
      // Firehose's raw changelog load is the stand-in's: locally the Redshift delivery graph is the one that applies.
      shape: { streamApply: applySource !== 'lake', redshiftDelivery: true },
      ...(dashboardPort !== undefined ? { port: dashboardPort } : {}),
    });
  } catch (err) {
    await p.stop();
    throw err;
  }
  await p.startProducer();
  const ep: Endpoints = { ...p.endpoints, dashboard: { url: dashboard.url } };
  const pool = mysql.createPool({ ...ep.mysql, connectionLimit: 4 });
  const gen = load > 0 ? startLoad(pool, ep.mysql.database, load) : undefined;
  // Rates over the last 5 s: deliveries come once a second, so a 1 s window would flicker between 0 and 2×.
  const window: { at: number; captured: number; applied: number }[] = [];
  const writeStatus = () => {
    const now = Date.now();
    window.push({ at: now, captured: p.stats.captured, applied: p.stats.applied });
    while (window.length > 6) window.shift();
    const first = window[0]!;
    const dt = Math.max(1, now - first.at) / 1000;
    const { errors, producerFailedAt, ...counters } = p.stats;
    writeAtomically(
      STATUS,
      JSON.stringify({
        at: now,
        applySource,
        ...counters,
        capturedPerS: Math.round((p.stats.captured - first.captured) / dt),
        appliedPerS: Math.round((p.stats.applied - first.applied) / dt),
        generated: gen?.rows ?? 0,
        loadErrors: gen?.errors ?? 0,
        lastError: errors.at(-1) ?? null,
        producerDown: producerDown(p.stats, now) ?? null,
      } satisfies StatusFile),
    );
  };
  writeStatus();
  const status = setInterval(writeStatus, 1000);
  writeAtomically(ENDPOINTS, `${JSON.stringify(ep, null, 2)}\n`);
  // After the endpoints file: the dashboard reads the stores as `npx cdc status` does, from that file.
  dashboard.startReadingStores();
  process.stderr.write(`${new Date().toISOString()} ready; dashboard ${dashboard.url}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(status);
    process.stderr.write(`${new Date().toISOString()} stopping\n`);
    await gen?.stop();
    await pool.end();
    await dashboard.close();
    await p.stop();
    rmSync(PID, { force: true });
    rmSync(ENDPOINTS, { force: true });
    rmSync(STATUS, { force: true });
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

interface StatusFile {
  at: number;
  /** Which path merges (`--apply`); absent in files written before it existed. */
  applySource?: ApplySource;
  captured: number;
  applied: number;
  lastFreshnessS: number;
  secondsBehind: number;
  producerStarts: number;
  firehoseStarts: number;
  applyStarts?: number;
  capturedPerS: number;
  appliedPerS: number;
  generated: number;
  loadErrors: number;
  lastError: string | null;
  /** Why the producer counts as down (a crash loop), or null: its seconds behind mean nothing then. */
  producerDown?: string | null;
}

function statusLine(st: StatusFile): string {
  return [
    `captured ${st.capturedPerS} rows/s`,
    `applied ${st.appliedPerS} rows/s`,
    st.producerDown ? `producer DOWN: ${st.producerDown}` : `${st.secondsBehind.toFixed(0)} s behind source`,
    `freshness ${st.lastFreshnessS.toFixed(1)} s`,
    `applied ${st.applied}`,
    ...(st.generated ? [`generated ${st.generated}`] : []),
    ...(st.producerStarts > 1 || st.firehoseStarts > 1 || (st.applyStarts ?? 0) > 1
      ? [
          `restarts: producer ${st.producerStarts - 1}, firehose ${st.firehoseStarts - 1}${st.applyStarts ? `, stream apply ${st.applyStarts - 1}` : ''}`,
        ]
      : []),
  ].join(' · ');
}

/**
 * Starts the supervisor in its own session (so a Ctrl-C in this terminal reaches only this CLI, which then stops the
 * pipeline in order: producer drain and checkpoint first, servers last) and waits until it is ready.
 */
async function startBackground(): Promise<number> {
  // Here, not only in the supervisor: an apt-get install on a fresh machine shows its progress in this terminal.
  try {
    ensureSystemPackages((l) => process.stderr.write(`${l}\n`));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
  rmSync(ENDPOINTS, { force: true });
  mkdirSync(DIR, { recursive: true });
  const out = openSync(join(DIR, 'supervisor.log'), 'a');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'local/main.ts'),
      'supervise',
      '--apply',
      applySource,
      ...(load ? ['--load', String(load)] : []),
      ...(dashboardPort !== undefined ? ['--dashboard-port', String(dashboardPort)] : []),
    ],
    { cwd: ROOT, detached: true, stdio: ['ignore', out, out], env: { ...process.env, LOCAL_STATE_DIR: DIR } },
  );
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
  });
  const outcome = await waitFor(
    'the local pipeline to be ready',
    async () => (exited !== undefined ? 'exited' : existsSync(ENDPOINTS) ? 'ready' : undefined),
    300_000,
  );
  if (outcome === 'exited') {
    const log = readFileSync(join(DIR, 'supervisor.log'), 'utf8').trim().split('\n').slice(-5).join('\n');
    process.stderr.write(
      `the pipeline stopped while starting (exit ${exited}):\n${log}\n(${join(DIR, 'supervisor.log')})\n`,
    );
    process.exit(1);
  }
  child.unref();
  return child.pid!;
}

/** The processes of a process group (/proc/<pid>/stat's fifth field); empty without /proc. */
function groupMembers(pgid: number): number[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  return pids
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Stops the supervisor (and whatever it left behind); returns what it did. */
async function stopBackground(): Promise<'stopped' | 'leftovers' | 'not running'> {
  const pid = running();
  const recorded = existsSync(PID) ? Number(readFileSync(PID, 'utf8')) : undefined;
  // The supervisor is a session leader (spawned detached): everything it started is in its process group.
  const groupAlive = (pgid: number) => {
    try {
      process.kill(-pgid, 0);
    } catch {
      return false;
    }
    // The group is ours only while a member of it is (the pid, and so the group id, may have been reused).
    return groupMembers(pgid).some(ours);
  };
  if (pid) {
    process.kill(pid, 'SIGTERM');
    // Gone means the process has exited, not only that it removed its pid file.
    await waitFor('the local pipeline to stop', async () => !exists(pid), 180_000);
  }
  const leftovers = recorded !== undefined && groupAlive(recorded);
  if (recorded && leftovers) {
    // The supervisor died without cleaning up (SIGKILL, OOM) or was stopped while still starting.
    process.kill(-recorded, 'SIGTERM');
    await waitFor('what the supervisor had started to stop', async () => !groupAlive(recorded), 120_000);
  }
  rmSync(PID, { force: true });
  rmSync(ENDPOINTS, { force: true });
  return pid ? 'stopped' : leftovers ? 'leftovers' : 'not running';
}

async function foreground(): Promise<void> {
  const pid = await startBackground();
  const ep = JSON.parse(readFileSync(ENDPOINTS, 'utf8')) as Endpoints;
  process.stderr.write(
    `ready, applying from the ${applySource === 'both' ? 'stream and the lake' : applySource}${applySource === 'stream' ? ' (event source mapping stand-in; the Firehose stand-in keeps the lake)' : ''}: MySQL ${ep.mysql.host}:${ep.mysql.port} (user ${ep.mysql.user}, database ${ep.mysql.database}); replicas in ${ep.postgres.url} schema ${ep.replicaSchema}; endpoints in ${ENDPOINTS}\ndashboard: ${ep.dashboard?.url ?? 'not served'}\nCtrl-C stops everything\n`,
  );
  let stopping = false;
  const tick = setInterval(() => {
    if (stopping) return;
    if (!exists(pid)) {
      process.stderr.write(`\nthe pipeline stopped unexpectedly; see ${join(DIR, 'supervisor.log')}\n`);
      process.exit(1);
    }
    try {
      const st = JSON.parse(readFileSync(STATUS, 'utf8')) as StatusFile;
      process.stderr.write(`\r${statusLine(st).padEnd(120)}`);
    } catch {
      // not written yet
    }
  }, 1000);
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(tick);
    process.stderr.write('\nstopping (producer drains and checkpoints first)…\n');
    await stopBackground();
    process.stderr.write('stopped\n');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

async function printStatus(): Promise<void> {
  if (!running() || !existsSync(ENDPOINTS)) {
    process.stdout.write('not running (start it with `npm run local -- up`)\n');
    process.exitCode = 1;
    return;
  }
  const ep = JSON.parse(readFileSync(ENDPOINTS, 'utf8')) as Endpoints;
  const my = await mysql.createConnection(ep.mysql);
  const pgc = new pg.Client({ connectionString: ep.postgres.url });
  await pgc.connect();
  const [master] = await my.query('SHOW MASTER STATUS');
  const m = (master as { File: string; Position: number }[])[0];
  const [tables] = await my.query(
    'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? ORDER BY 1',
    [ep.mysql.database],
  );
  process.stdout.write(`source binlog end:   ${m?.File}:${m?.Position}\n`);
  if (ep.dashboard) process.stdout.write(`dashboard:           ${ep.dashboard.url}\n`);
  const dynamo = new DynamoDBClient(localAwsClientConfig(ep.aws.dynamodb));
  const cp = (
    await dynamo
      .send(
        new GetItemCommand({
          TableName: ep.aws.checkpointTable,
          Key: { pk: { S: 'local' }, sk: { S: 'producer' } },
          ConsistentRead: true,
        }),
      )
      .catch(() => ({ Item: undefined }))
  ).Item;
  process.stdout.write(
    `producer checkpoint: ${cp?.file?.S ? `${cp.file.S}:${cp.pos?.N ?? '?'}${cp.gtid?.S ? ` (GTID ${cp.gtid.S})` : ''}` : 'none yet'}\n`,
  );
  // Tables the producer set aside (rows it cannot decode): they replicate nothing until `npx cdc resync <db.table>`.
  for (const q of parseQuarantine(cp?.quarantine?.S)) {
    process.stdout.write(
      `quarantined table:   ${q.table} since ${new Date(q.since).toISOString()}: ${q.reason} (fix the cause, then npx cdc resync ${q.table})\n`,
    );
  }
  const positions = (file: string) => {
    const shards = existsSync(join(DIR, file))
      ? (JSON.parse(readFileSync(join(DIR, file), 'utf8')) as Record<string, string>)
      : {};
    return (
      Object.entries(shards)
        .map(([shard, seq]) => `${shard} up to ${seq}`)
        .join(', ') || 'nothing yet'
    );
  };
  const st = existsSync(STATUS) ? (JSON.parse(readFileSync(STATUS, 'utf8')) as StatusFile) : undefined;
  if (st?.applySource) process.stdout.write(`applying from:       ${st.applySource}\n`);
  process.stdout.write(`firehose delivered:  ${positions(FIREHOSE_STATE_FILE_NAME)}\n`);
  if (st?.applySource !== 'lake')
    process.stdout.write(`stream applied:      ${positions(STREAM_APPLY_STATE_FILE_NAME)}\n`);
  if (st) {
    process.stdout.write(
      `lag:                 ${st.producerDown ? `producer DOWN: ${st.producerDown}` : `producer ${st.secondsBehind} s behind the source`}; rows/s captured ${st.capturedPerS}, applied ${st.appliedPerS}; producer starts ${st.producerStarts}, firehose starts ${st.firehoseStarts}${st.applyStarts ? `, stream apply starts ${st.applyStarts}` : ''}${st.lastError ? `; last error: ${st.lastError}` : ''}\n`,
    );
  }
  const batches = await pgc
    .query('SELECT max(max_commit_ms) AS newest FROM cdc.merge_batches')
    .catch(() => ({ rows: [{ newest: null }] }));
  const newest = Number(batches.rows[0]?.newest ?? 0);
  process.stdout.write(
    // An idle source makes this grow without anything being late: compare with the producer's lag above.
    `replica freshness:   ${newest ? `newest commit applied ${new Date(newest).toISOString()}, ${((Date.now() - newest) / 1000).toFixed(1)} s ago` : 'nothing applied yet'}\n`,
  );
  process.stdout.write(`${'table'.padEnd(24)}${'source rows'.padStart(12)}${'replica rows'.padStart(14)}\n`);
  for (const { t } of tables as { t: string }[]) {
    const [[c]] = (await my.query(`SELECT count(*) AS n FROM \`${ep.mysql.database}\`.\`${t}\``)) as unknown as [
      [{ n: number }],
    ];
    const r = await pgc
      .query(`SELECT count(*)::int AS n FROM "${ep.replicaSchema}"."${t}"`)
      .catch(() => ({ rows: [{ n: '-' }] }));
    process.stdout.write(`${t.padEnd(24)}${String(c.n).padStart(12)}${String(r.rows[0]?.n).padStart(14)}\n`);
  }
  await my.end();
  await pgc.end();
}

if (verb === 'supervise') {
  await serve().catch((err: Error) => {
    // Missing packages, a port in use, a producer that cannot start: say what, not a stack trace.
    process.stderr.write(`the local pipeline could not start: ${err.message}\n`);
    rmSync(PID, { force: true });
    process.exit(1);
  });
} else if (verb === 'run') {
  if (running()) usage('a local pipeline is already running (npm run local -- down)');
  await foreground();
} else if (verb === 'up') {
  if (running()) process.stdout.write('already running\n');
  else {
    await startBackground();
    const text = readFileSync(ENDPOINTS, 'utf8');
    const url = (JSON.parse(text) as Endpoints).dashboard?.url;
    process.stdout.write(`ready; endpoints in ${ENDPOINTS}\n${text}${url ? `dashboard: ${url}\n` : ''}`);
  }
} else if (verb === 'down') {
  const result = await stopBackground();
  process.stdout.write(
    result === 'leftovers' ? 'the supervisor was gone; stopped what it had started\n' : `${result}\n`,
  );
} else {
  await printStatus();
}
