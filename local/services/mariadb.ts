import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandExists, freePort, run, spawnDaemon, stopProcess, waitFor } from './process';

export interface MariaDbOptions {
  /** Directory for data, binlogs, socket and logs; created when missing, reused when it holds a database. */
  readonly dir: string;
  /** @default a free port */
  readonly port?: number;
  /** @default 1 */
  readonly serverId?: number;
  /** Extra mariadbd arguments (e.g. `--max-binlog-size=4096` to force rotation). */
  readonly extraArgs?: readonly string[];
}

export interface MariaDbServer {
  readonly host: string;
  readonly port: number;
  /** Superuser for tests and tooling (all privileges, from 127.0.0.1). */
  readonly user: string;
  readonly password: string;
  readonly socket: string;
  readonly dir: string;
  readonly binlogBase: string;
  readonly pid: number;
  /** Graceful shutdown. */
  stop(): Promise<void>;
  /** Runs SQL through the mariadb client as root over the socket; returns tab-separated output. */
  sql(statement: string): string;
}

export const MARIADB_USER = 'cdc';
export const MARIADB_PASSWORD = 'cdc-local-password';

/** The server settings the producer requires (ROW binlog with full images and full metadata). */
export const BINLOG_ARGS = [
  '--log-bin=mysql-bin',
  '--binlog-format=ROW',
  '--binlog-row-image=FULL',
  '--binlog-row-metadata=FULL',
] as const;

export function assertMariaDbInstalled(): void {
  if (!commandExists('mariadbd') && !existsSync('/usr/sbin/mariadbd')) {
    throw new Error(
      'MariaDB server not found: install it with `apt-get install -y mariadb-server mariadb-client` (Debian/Ubuntu).',
    );
  }
}

/**
 * Creates the system tables. mariadb-install-db runs a bootstrap server that, on a loaded machine (many test servers
 * starting at once), now and then fails without a reason on its output; a second try in a clean directory succeeds.
 * The last failure is reported with whatever the bootstrap left in the data directory.
 */
function installSystemTables(dataDir: string): void {
  for (let attempt = 1; ; attempt++) {
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true });
    try {
      run('mariadb-install-db', [
        '--no-defaults',
        `--datadir=${dataDir}`,
        '--user=root',
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
      ]);
      return;
    } catch (err) {
      if (attempt >= 3) {
        const logs = readdirSync(dataDir)
          .filter((f) => f.endsWith('.err') || f.endsWith('.log'))
          .map((f) => `${f}:\n${readFileSync(join(dataDir, f), 'utf8').slice(-2000)}`);
        throw new Error(`${(err as Error).message}\n${logs.join('\n')}`);
      }
    }
  }
}

/**
 * Starts a private MariaDB server (own data directory, port and socket; nothing shared with a system instance) with
 * ROW binlog, FULL row image and FULL row metadata, and creates a superuser reachable over TCP.
 */
export async function startMariaDb(opts: MariaDbOptions): Promise<MariaDbServer> {
  assertMariaDbInstalled();
  const dir = opts.dir;
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  mkdirSync(dir, { recursive: true });
  const fresh = !existsSync(join(dataDir, 'mysql'));
  if (fresh) installSystemTables(dataDir);
  const port = opts.port ?? (await freePort());
  const args = [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${socket}`,
    `--pid-file=${join(dir, 'mysqld.pid')}`,
    `--log-error=${join(dir, 'error.log')}`,
    '--user=root',
    `--server-id=${opts.serverId ?? 1}`,
    ...BINLOG_ARGS,
    '--innodb-buffer-pool-size=256M',
    '--innodb-log-file-size=256M',
    '--innodb-flush-log-at-trx-commit=2',
    '--sync-binlog=0',
    '--max-connections=200',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_unicode_ci',
    '--skip-name-resolve',
    ...(opts.extraArgs ?? []),
  ];
  const child: ChildProcess = spawnDaemon('mariadbd', args);
  let exitInfo = '';
  child.once('exit', (code, sig) => {
    exitInfo = `mariadbd exited (${code ?? sig})`;
  });
  const sql = (statement: string): string =>
    run('mariadb', [
      '--no-defaults',
      `--socket=${socket}`,
      '-uroot',
      '--batch',
      '--skip-column-names',
      '-e',
      statement,
    ]);
  await waitFor(
    `MariaDB on port ${port}`,
    async () => {
      if (exitInfo) {
        const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').slice(-2000) : '';
        throw new Error(`${exitInfo}\n${log}`);
      }
      sql('SELECT 1');
      return true;
    },
    60_000,
  );
  if (fresh) {
    sql(
      `CREATE USER IF NOT EXISTS '${MARIADB_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';` +
        ` GRANT ALL PRIVILEGES ON *.* TO '${MARIADB_USER}'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;`,
    );
  }
  writeFileSync(join(dir, 'port'), String(port));
  return {
    host: '127.0.0.1',
    port,
    user: MARIADB_USER,
    password: MARIADB_PASSWORD,
    socket,
    dir,
    binlogBase: join(dataDir, 'mysql-bin'),
    pid: child.pid ?? -1,
    stop: () => stopProcess(child, 30_000),
    sql,
  };
}
