import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { commandExists, freePort, run, spawnDaemon, stopProcess, waitFor } from './process';

export interface PostgresOptions {
  /** Directory for the cluster, socket and log; created when missing, reused when it holds a cluster. */
  readonly dir: string;
  /** @default a free port */
  readonly port?: number;
  /** @default 'warehouse' */
  readonly database?: string;
}

export interface PostgresServer {
  readonly url: string;
  readonly port: number;
  readonly database: string;
  readonly pid: number;
  stop(): Promise<void>;
}

const PG_BIN_CANDIDATES = ['/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/15/bin'];

function pgBin(name: string): string {
  for (const dir of PG_BIN_CANDIDATES) if (existsSync(join(dir, name))) return join(dir, name);
  if (commandExists(name)) return name;
  throw new Error(`PostgreSQL server binary ${name} not found: install it with \`apt-get install -y postgresql\`.`);
}

/** PostgreSQL refuses to run as root: when we are root, run its binaries as the `postgres` user. */
function asPostgres(cmd: string, args: readonly string[]): [string, string[]] {
  if (process.getuid?.() === 0) return ['runuser', ['-u', 'postgres', '--', cmd, ...args]];
  return [cmd, [...args]];
}

/**
 * Starts a private PostgreSQL (own cluster directory and port, trust auth on loopback, durability off: it only
 * stands in for Redshift locally and in tests).
 */
export async function startPostgres(opts: PostgresOptions): Promise<PostgresServer> {
  const dir = opts.dir;
  const dataDir = join(dir, 'data');
  const database = opts.database ?? 'warehouse';
  mkdirSync(dir, { recursive: true });
  if (process.getuid?.() === 0) {
    run('chown', ['-R', 'postgres:postgres', dir]);
    // The postgres user must be able to reach the directory: let it traverse every ancestor (mkdtemp makes 0700).
    for (let d = resolve(dir); d !== dirname(d); d = dirname(d)) {
      const mode = statSync(d).mode;
      if ((mode & 0o001) === 0) chmodSync(d, mode | 0o001);
    }
  }
  const fresh = !existsSync(join(dataDir, 'PG_VERSION'));
  if (fresh) {
    const [c, a] = asPostgres(pgBin('initdb'), [
      '-D',
      dataDir,
      '-A',
      'trust',
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--no-locale',
    ]);
    run(c, a);
  }
  const port = opts.port ?? (await freePort());
  const [cmd, args] = asPostgres(pgBin('postgres'), [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=200',
    '-c',
    'shared_buffers=256MB',
    '-c',
    'max_wal_size=2GB',
    '-c',
    `logging_collector=off`,
  ]);
  const child: ChildProcess = spawnDaemon(cmd, args);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  let exitInfo = '';
  child.once('exit', (code, sig) => {
    exitInfo = `postgres exited (${code ?? sig})`;
  });
  const psql = (db: string, sql: string): string =>
    run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-Atqc', sql]);
  await waitFor(
    `PostgreSQL on port ${port}`,
    async () => {
      if (exitInfo) throw new Error(`${exitInfo}\n${stderr}`);
      psql('postgres', 'SELECT 1');
      return true;
    },
    60_000,
  );
  if (psql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${database}'`).trim() !== '1') {
    psql('postgres', `CREATE DATABASE "${database}"`);
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    port,
    database,
    pid: child.pid ?? -1,
    stop: () => stopProcess(child, 30_000),
  };
}

/** Reads the port a previous run left in a cluster directory's postmaster.pid (line 4), if any. */
export function runningPostgresPort(dir: string): number | undefined {
  const pidFile = join(dir, 'data', 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const port = Number(readFileSync(pidFile, 'utf8').split('\n')[3]);
  return Number.isFinite(port) ? port : undefined;
}
