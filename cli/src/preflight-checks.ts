/**
 * The checks of `npx cdc preflight` (docs/deploy.md's prerequisites), as pure functions over facts fetched once by
 * the command (cli/src/commands/preflight.ts): each gives one line with ✓ or ✗ and, when it fails, the fix. The binlog
 * settings are judged by the producer's own rule (`settingsProblems`), so preflight and the producer cannot disagree.
 */
import { settingsProblems } from '../../containers/producer/src/server-check';

export interface Check {
  /** Stable id for scripts (`--json`), e.g. `source.binlog_row_image`. */
  readonly id: string;
  readonly status: 'ok' | 'fail';
  /** What was found (on success) or what is wrong. */
  readonly detail: string;
  /** What to do, when it failed. */
  readonly fix?: string;
}

const ok = (id: string, detail: string): Check => ({ id, status: 'ok', detail });
const fail = (id: string, detail: string, fix: string): Check => ({ id, status: 'fail', detail, fix });

/** Where a server setting is changed, besides the running server (SET GLOBAL is lost at a restart). */
const PERSIST = 'and in the server configuration (my.cnf; RDS/Aurora: the DB parameter group)';

/** The binlog settings the producer requires, with the statement that fixes each. */
const SETTINGS: readonly { name: string; fix: string }[] = [
  { name: 'log_bin', fix: `start the server with --log-bin (RDS: enable automated backups) ${PERSIST}` },
  { name: 'binlog_format', fix: `SET GLOBAL binlog_format = 'ROW' ${PERSIST}` },
  { name: 'binlog_row_image', fix: `SET GLOBAL binlog_row_image = 'FULL' ${PERSIST}` },
  {
    name: 'binlog_row_metadata',
    fix: `SET GLOBAL binlog_row_metadata = 'FULL' ${PERSIST} (MySQL ≥ 8.0.1, MariaDB ≥ 10.5)`,
  },
  { name: 'binlog_transaction_compression', fix: `SET GLOBAL binlog_transaction_compression = OFF ${PERSIST}` },
  { name: 'binlog_row_value_options', fix: `SET GLOBAL binlog_row_value_options = '' ${PERSIST}` },
];

/** The variables the source checks read (SHOW GLOBAL VARIABLES). */
export const SOURCE_VARIABLES = [
  ...SETTINGS.map((s) => s.name),
  'server_id',
  'binlog_expire_logs_seconds',
  'expire_logs_days',
  'version',
] as const;

export interface BinlogFacts {
  /** SHOW GLOBAL VARIABLES, by name. */
  readonly variables: Readonly<Record<string, string>>;
  /** RDS/Aurora `binlog retention hours` (mysql.rds_show_configuration): null when unset, undefined off RDS. */
  readonly rdsRetentionHours?: number | null;
}

export interface BinlogOptions {
  /** The server id the producer presents (SOURCE_SERVER_ID): must differ from the source's own. */
  readonly producerServerId: number;
  /** How long the binlog must be kept, in hours (the longest outage the pipeline survives). @default 168 */
  readonly minRetentionHours?: number;
}

/** Hours the server keeps a binlog file: Infinity when it never purges on its own. */
export function retentionHours(facts: BinlogFacts): number {
  if (facts.rdsRetentionHours !== undefined) return facts.rdsRetentionHours ?? 0;
  const seconds = Number(facts.variables.binlog_expire_logs_seconds ?? 0);
  if (seconds > 0) return seconds / 3600;
  const days = Number(facts.variables.expire_logs_days ?? 0);
  if (days > 0) return days * 24;
  return Number.POSITIVE_INFINITY;
}

export function binlogChecks(facts: BinlogFacts, opts: BinlogOptions): Check[] {
  const problems = settingsProblems(facts.variables);
  const checks = SETTINGS.map(({ name, fix }) => {
    const problem = problems.find((p) => p.startsWith(`${name} `));
    const got = facts.variables[name];
    return problem ? fail(`source.${name}`, problem, fix) : ok(`source.${name}`, `${name} is ${got ?? 'not present'}`);
  });

  const serverId = Number(facts.variables.server_id ?? 0);
  if (serverId === 0) {
    checks.push(
      fail(
        'source.server_id',
        'server_id is 0 (a server without an id cannot serve replicas)',
        `SET GLOBAL server_id = <n> ${PERSIST}`,
      ),
    );
  } else if (serverId === opts.producerServerId) {
    checks.push(
      fail(
        'source.server_id',
        `server_id is ${serverId}, the same id the producer presents (SOURCE_SERVER_ID)`,
        'give the producer another SOURCE_SERVER_ID, unique in the replication topology',
      ),
    );
  } else {
    checks.push(ok('source.server_id', `server_id is ${serverId} (the producer presents ${opts.producerServerId})`));
  }

  const min = opts.minRetentionHours ?? 168;
  const hours = retentionHours(facts);
  const kept = Number.isFinite(hours) ? `${+hours.toFixed(1)} h` : 'until purged by hand';
  if (hours >= min) {
    checks.push(ok('source.binlog_retention', `binlogs kept ${kept} (at least ${min} h needed)`));
  } else {
    checks.push(
      fail(
        'source.binlog_retention',
        facts.rdsRetentionHours === null
          ? 'RDS binlog retention hours is not set: RDS purges binlogs within minutes'
          : `binlogs kept ${kept}, less than the ${min} h an outage of the pipeline may last`,
        facts.rdsRetentionHours !== undefined
          ? `CALL mysql.rds_set_configuration('binlog retention hours', ${min})`
          : `SET GLOBAL binlog_expire_logs_seconds = ${min * 3600} ${PERSIST}`,
      ),
    );
  }
  return checks;
}

/** The replication user's privileges, from information_schema (USER_, SCHEMA_ and TABLE_PRIVILEGES). */
export interface GrantFacts {
  /** `user@host` as CURRENT_USER() names it. */
  readonly user: string;
  /** Global privileges (`*.*`). */
  readonly global: readonly string[];
  /** Database-level privileges; `schema` is a LIKE pattern (`shop\_%`). */
  readonly schemas: readonly { readonly schema: string; readonly privilege: string }[];
  readonly tables: readonly { readonly schema: string; readonly table: string; readonly privilege: string }[];
}

export interface GrantOptions {
  /** CAPTURE_INCLUDE (`db.table` globs); empty: every database. */
  readonly captureInclude: readonly string[];
  readonly signalTable: { readonly db: string; readonly table: string };
}

/** A database-level grant's pattern (SQL LIKE, `\` escapes) matches the database. */
function likeMatches(pattern: string, name: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '%') re += '.*';
    else if (c === '_') re += '.';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i').test(name);
}

/** Whether the user holds `privilege` on the database `db` (or on `db.table` when given). */
export function holds(g: GrantFacts, privilege: string, db?: string, table?: string): boolean {
  const is = (p: string) => p.toUpperCase() === privilege;
  if (g.global.some(is)) return true;
  if (db === undefined) return false;
  if (g.schemas.some((s) => is(s.privilege) && likeMatches(s.schema, db))) return true;
  if (table === undefined) return false;
  return g.tables.some(
    (t) =>
      is(t.privilege) && t.schema.toLowerCase() === db.toLowerCase() && t.table.toLowerCase() === table.toLowerCase(),
  );
}

/** The databases the capture rules read: `undefined` when a rule can match any database (needs SELECT on `*.*`). */
export function capturedDatabases(include: readonly string[]): string[] | undefined {
  if (include.length === 0) return undefined;
  const dbs = new Set<string>();
  for (const rule of include) {
    const db = rule.split('.')[0] ?? '';
    if (db === '' || /[*?]/.test(db)) return undefined;
    dbs.add(db);
  }
  return [...dbs];
}

export function grantChecks(g: GrantFacts, opts: GrantOptions): Check[] {
  const to = `TO ${g.user.replace(/^(.*)@([^@]*)$/, "'$1'@'$2'")}`;
  const checks: Check[] = [];
  checks.push(
    holds(g, 'REPLICATION SLAVE')
      ? ok('grants.replication_slave', `${g.user} may read the binlog (REPLICATION SLAVE)`)
      : fail('grants.replication_slave', `${g.user} lacks REPLICATION SLAVE`, `GRANT REPLICATION SLAVE ON *.* ${to}`),
  );
  // MariaDB ≥ 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR (the old name is an alias).
  checks.push(
    holds(g, 'REPLICATION CLIENT') || holds(g, 'BINLOG MONITOR')
      ? ok('grants.replication_client', `${g.user} may list binlogs (REPLICATION CLIENT)`)
      : fail(
          'grants.replication_client',
          `${g.user} lacks REPLICATION CLIENT (SHOW MASTER STATUS, SHOW BINARY LOGS)`,
          `GRANT REPLICATION CLIENT ON *.* ${to}`,
        ),
  );
  const dbs = capturedDatabases(opts.captureInclude);
  if (dbs === undefined) {
    checks.push(
      holds(g, 'SELECT')
        ? ok('grants.select', `${g.user} may read every database (snapshots, backfills)`)
        : fail(
            'grants.select',
            `${g.user} lacks SELECT on *.* (the capture rules can match any database; snapshots read the tables)`,
            `GRANT SELECT ON *.* ${to}, or narrow CAPTURE_INCLUDE to named databases`,
          ),
    );
  } else {
    const missing = dbs.filter((db) => !holds(g, 'SELECT', db));
    checks.push(
      missing.length === 0
        ? ok('grants.select', `${g.user} may read ${dbs.join(', ')} (snapshots, backfills)`)
        : fail(
            'grants.select',
            `${g.user} lacks SELECT on ${missing.join(', ')} (snapshots and backfills read the captured tables)`,
            missing.map((db) => `GRANT SELECT ON \`${db}\`.* ${to}`).join('; '),
          ),
    );
  }
  // docs/snapshot.md: the producer creates the signal table when missing (CREATE on its database, needed by the
  // CREATE ... IF NOT EXISTS it runs at every start) and writes watermarks (INSERT, UPDATE on the table).
  const { db, table } = opts.signalTable;
  const need = [
    ...(holds(g, 'CREATE', db) ? [] : [`CREATE ON \`${db}\`.*`]),
    ...(['INSERT', 'UPDATE'] as const)
      .filter((p) => !holds(g, p, db, table))
      .map((p) => `${p} ON \`${db}\`.\`${table}\``),
  ];
  checks.push(
    need.length === 0
      ? ok('grants.signal_table', `${g.user} may create ${db}.${table} and write watermarks to it`)
      : fail(
          'grants.signal_table',
          `${g.user} lacks ${need.join(', ')} (snapshot and backfill watermarks go to the signal table)`,
          need.map((n) => `GRANT ${n} ${to}`).join('; '),
        ),
  );
  return checks;
}

/** The result of one probe of a service (reachable, present): what it found, or the error it met. */
export type Probe = { readonly ok: true; readonly detail: string } | { readonly ok: false; readonly error: string };

export function probeCheck(id: string, what: string, probe: Probe, fix: string): Check {
  return probe.ok ? ok(id, `${what}: ${probe.detail}`) : fail(id, `${what}: ${probe.error}`, fix);
}

/** One line per check: `✓ id  detail`, `✗ id  detail  → fix: …`. */
export function formatCheck(c: Check): string {
  const mark = c.status === 'ok' ? '✓' : '✗';
  const hint = c.fix ? `  → fix: ${c.fix}` : '';
  return `${mark} ${c.id.padEnd(28)} ${c.detail}${hint}`;
}

/** Exit code of the run: 1 when any check failed. */
export function preflightExitCode(checks: readonly Check[]): number {
  return checks.some((c) => c.status === 'fail') ? 1 : 0;
}
