/**
 * `cdc rebuild <db.table> --as-of <time> [--into <name>]`: builds the table as it was at a moment, from the S3
 * changelog lake alone, into a new warehouse table next to the replica (default `<table>__as_of_<yyyymmddThhmmss>`).
 * Every event of the table committed at or before the moment is merged by the real merge (the same type mapping,
 * newest position per key, deletes applied), with its bookkeeping in a separate schema (`<changelog schema>_rebuild`)
 * so the live replica and its freshness figures are untouched. Binlog timestamps have second precision: as of
 * 10:00:00.500 includes what was committed during second 10:00:00. Rows that existed before capture started appear
 * from their snapshot (`read` events at the snapshot's time).
 */
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { resolveClaimChecks } from '../../../lambdas/merge/src/apply-object';
import { decodeBody, parseBatch } from '../../../lambdas/merge/src/batch';
import { mergeEvents } from '../../../lambdas/merge/src/merge';
import type { ChangeEvent } from '../../../shared/change-event';
import { LAKE_CHANGELOG_PREFIX } from '../../../shared/lake-layout';
import { CliError } from '../errors';
import { count, type Output } from '../output';
import type { Target } from '../target';

export interface RebuildOptions {
  readonly db: string;
  readonly table: string;
  readonly asOf: string | undefined;
  readonly into?: string | undefined;
}

/** ISO 8601 (UTC unless a zone is given) → epoch ms. @throws CliError USAGE, starting with `usage` */
export function parseAsOf(text: string | undefined, usage = 'rebuild needs --as-of <time>'): number {
  const s = (text ?? '').trim().replace(' ', 'T');
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(s)
    ? Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(s) ? s : `${s}Z`)
    : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw new CliError('USAGE', `${usage} (ISO 8601, e.g. 2026-11-23T10:00:00Z), got ${JSON.stringify(text ?? null)}`);
  }
  return ms;
}

export function defaultRebuildName(table: string, asOfMs: number): string {
  return `${table}__as_of_${new Date(asOfMs).toISOString().replace(/[-:]/g, '').slice(0, 15).toLowerCase()}`;
}

export async function rebuild(t: Target, opts: RebuildOptions, out: Output): Promise<number> {
  const asOf = parseAsOf(opts.asOf);
  if (asOf > Date.now()) throw new CliError('REFUSED', `--as-of ${new Date(asOf).toISOString()} is in the future`);
  const into = opts.into ?? defaultRebuildName(opts.table, asOf);
  if (!/^[a-z_][a-z0-9_$]*$/.test(into)) {
    throw new CliError('USAGE', `--into must be a lower-case SQL identifier, got ${JSON.stringify(into)}`);
  }
  const schema = t.replicaSchema(opts.db);
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const exists = await t.warehouse.query(
    `SELECT 1 AS x FROM information_schema.tables WHERE table_schema = ${lit(schema)} AND table_name = ${lit(into)}`,
  );
  if (exists.length > 0) throw new CliError('REFUSED', `${schema}.${into} exists already; choose another --into`);

  const prefix = `${LAKE_CHANGELOG_PREFIX}source_db=${opts.db}/source_table=${opts.table}/`;
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await t.s3.send(
      new ListObjectsV2Command({ Bucket: t.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  if (keys.length === 0)
    throw new CliError(
      'NOT_FOUND',
      `no changelog objects for ${opts.db}.${opts.table} under s3://${t.bucket}/${prefix}`,
    );

  // Delivery is at-least-once: the same event can sit in two objects; its position says it is the same.
  const events = new Map<string, ChangeEvent>();
  let seen = 0;
  for (const [i, key] of keys.entries()) {
    const res = await t.s3.send(new GetObjectCommand({ Bucket: t.bucket, Key: key }));
    const source = `s3://${t.bucket}/${key}`;
    const batch = parseBatch(decodeBody(await res.Body!.transformToByteArray()), source);
    seen += batch.length;
    const due = batch.filter((e) => e.ts_ms <= asOf && !events.has(e.position));
    for (const e of await resolveClaimChecks(t.s3, due, source)) events.set(e.position, { ...e, table: into });
    out.progress(
      `reading the lake: ${i + 1}/${keys.length} objects, ${count(events.size)} events up to ${new Date(asOf).toISOString()}`,
    );
  }
  out.done();
  if (events.size === 0) {
    throw new CliError(
      'NOT_FOUND',
      `nothing of ${opts.db}.${opts.table} was committed at or before ${new Date(asOf).toISOString()}`,
    );
  }
  const list = [...events.values()].sort((a, b) => (a.position < b.position ? -1 : 1));
  // A table of that name rebuilt and dropped before leaves its keys behind, which would hide every change now.
  const state = `"${t.changelogSchema}_rebuild"`;
  await t.warehouse.query(`DROP TABLE IF EXISTS ${state}."${opts.db}__${into}__keys"`).catch(() => undefined);
  await t.warehouse
    .query(`DELETE FROM ${state}.replica_columns WHERE source_db = ${lit(opts.db)} AND source_table = ${lit(into)}`)
    .catch(() => undefined);
  await mergeEvents(list, `rebuild:${opts.db}.${opts.table}@${asOf}:${Date.now()}`, {
    warehouse: t.warehouse,
    naming: { stateSchema: `${t.changelogSchema}_rebuild`, replicaSchema: schema },
    historyTables: new Set(),
  });
  const [{ n }] = (await t.warehouse.query(`SELECT COUNT(*) AS n FROM "${schema}"."${into}"`)) as [{ n: unknown }];
  const report = {
    table: `${opts.db}.${opts.table}`,
    asOf: new Date(asOf).toISOString(),
    into: `${schema}.${into}`,
    rows: Number(n),
    events: list.length,
    eventsInLake: seen,
    objects: keys.length,
    newestChange: new Date(Math.max(...list.map((e) => e.ts_ms))).toISOString(),
  };
  out.result(report);
  out.say(
    `rebuilt ${report.table} as of ${report.asOf} into ${report.into}: ${count(report.rows)} rows (${count(report.events)} of ${count(seen)} changes in ${keys.length} objects; newest applied committed ${report.newestChange})`,
  );
  return 0;
}
