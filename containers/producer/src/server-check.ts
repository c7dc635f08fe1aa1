import type { Connection } from 'mysql2/promise';
import { ProducerError } from './errors';

/** Required server settings: [variable, required value, why]. Missing variables (older servers) count as wrong. */
const REQUIRED: readonly [string, string, string][] = [
  ['log_bin', '1', 'the binary log must be on (--log-bin)'],
  ['binlog_format', 'ROW', 'row events carry the changed rows'],
  ['binlog_row_image', 'FULL', 'full before and after images'],
  ['binlog_row_metadata', 'FULL', 'column names and types in the binlog, so ALTER TABLE never mis-names columns'],
];
/** Settings that must be off: the reader cannot decode what they produce. */
const FORBIDDEN: readonly [string, string][] = [
  ['binlog_transaction_compression', 'compressed transaction payloads (MySQL) cannot be decoded'],
  ['binlog_row_value_options', 'PARTIAL_JSON updates carry JSON diffs, not full images'],
];

/** Pure check of SHOW VARIABLES output; returns every problem with the setting to change. */
export function settingsProblems(vars: Readonly<Record<string, string>>): string[] {
  const problems: string[] = [];
  for (const [name, want, why] of REQUIRED) {
    const got = vars[name];
    const ok =
      got !== undefined && (name === 'log_bin' ? ['1', 'ON'].includes(got.toUpperCase()) : got.toUpperCase() === want);
    if (!ok)
      problems.push(
        `${name} is ${got === undefined ? 'not available' : JSON.stringify(got)}, set ${name}=${want} (${why})`,
      );
  }
  for (const [name, why] of FORBIDDEN) {
    const got = vars[name];
    if (got !== undefined && !['', '0', 'OFF'].includes(got.toUpperCase()))
      problems.push(`${name} is ${JSON.stringify(got)}, turn it off: ${why}`);
  }
  return problems;
}

export async function checkServer(conn: Connection): Promise<{ flavor: 'mariadb' | 'mysql'; version: string }> {
  const [rows] = await conn.query(
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin','binlog_format','binlog_row_image','binlog_row_metadata','binlog_transaction_compression','binlog_row_value_options','version')",
  );
  const vars: Record<string, string> = {};
  for (const r of rows as { Variable_name: string; Value: string }[]) vars[r.Variable_name] = r.Value;
  const problems = settingsProblems(vars);
  if (problems.length > 0) {
    throw new ProducerError(
      'SERVER_SETTINGS',
      `the source server cannot be captured as configured: ${problems.join('; ')}`,
    );
  }
  const version = vars.version ?? '';
  return { flavor: /mariadb/i.test(version) ? 'mariadb' : 'mysql', version };
}
