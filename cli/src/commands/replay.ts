/**
 * `cdc replay [<db.table>] --since <time> [--until <time>]`: applies the S3 changelog lake's objects of a time window
 * again to the live replicas, through the lake path's own entry (`processObject`). The merge is idempotent and
 * order-insensitive, so replaying changes nothing that is already applied and fills in what is missing: the way back
 * after the stream apply's event source mapping gave up on batches (an outage longer than its maximum record age:
 * their records sit in its on-failure destination, and in the lake), after a table's handed-off objects were
 * dead-lettered and dropped, or to prove that both paths agree. Objects are chosen by their partition hour (Firehose's
 * arrival time), whole: a window of 10:20–10:40 replays the objects of hour 10.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { processObject } from '../../../lambdas/merge/src/apply-object';
import type { MergeContext } from '../../../lambdas/merge/src/merge';
import { LAKE_CHANGELOG_PREFIX, parseLakeKey } from '../../../shared/lake-layout';
import { CliError } from '../errors';
import { count, type Output } from '../output';
import type { Target } from '../target';
import { parseAsOf } from './rebuild';

export interface ReplayOptions {
  /** One table, or every table when undefined. */
  readonly table?: { readonly db: string; readonly table: string } | undefined;
  readonly since: string | undefined;
  readonly until?: string | undefined;
}

/** The hour partitions (`dt`, `hour`) a window touches, oldest first. */
export function hoursOf(sinceMs: number, untilMs: number): { dt: string; hour: string }[] {
  const out: { dt: string; hour: string }[] = [];
  for (let t = Math.floor(sinceMs / 3_600_000) * 3_600_000; t <= untilMs; t += 3_600_000) {
    const iso = new Date(t).toISOString();
    out.push({ dt: iso.slice(0, 10), hour: iso.slice(11, 13) });
  }
  return out;
}

export async function replay(t: Target, opts: ReplayOptions, out: Output): Promise<number> {
  const since = parseAsOf(opts.since, 'replay needs --since <time>');
  const until = opts.until === undefined ? Date.now() : parseAsOf(opts.until, 'replay needs --until <time>');
  if (until < since) {
    throw new CliError(
      'USAGE',
      `--until ${new Date(until).toISOString()} is before --since ${new Date(since).toISOString()}`,
    );
  }
  const hours = hoursOf(since, until);
  if (hours.length > 24 * 31) throw new CliError('USAGE', `the window spans ${hours.length} hours; at most 31 days`);
  const wanted = new Set(hours.map((h) => `${h.dt}/${h.hour}`));
  const prefix = opts.table
    ? `${LAKE_CHANGELOG_PREFIX}source_db=${opts.table.db}/source_table=${opts.table.table}/`
    : LAKE_CHANGELOG_PREFIX;
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await t.s3.send(
      new ListObjectsV2Command({ Bucket: t.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
    );
    for (const o of page.Contents ?? []) {
      const ref = o.Key ? parseLakeKey(o.Key) : undefined;
      if (ref && wanted.has(`${ref.dt}/${ref.hour}`)) keys.push(o.Key!);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const window = `${new Date(since).toISOString()} … ${new Date(until).toISOString()}`;
  if (keys.length === 0) {
    throw new CliError('NOT_FOUND', `no changelog objects under s3://${t.bucket}/${prefix} for ${window}`);
  }
  // The live replicas' naming; history tables as the merge is configured (HISTORY_TABLES).
  const historyTables = new Set(
    (process.env.HISTORY_TABLES ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const contexts = new Map<string, MergeContext>();
  const ctxFor = (db: string): MergeContext => {
    let ctx = contexts.get(db);
    if (!ctx) {
      ctx = {
        warehouse: t.warehouse,
        naming: { stateSchema: t.changelogSchema, replicaSchema: t.replicaSchema(db) },
        historyTables,
      };
      contexts.set(db, ctx);
    }
    return ctx;
  };
  let events = 0;
  const failed: { object: string; kind: string; reason: string }[] = [];
  for (const [i, key] of keys.entries()) {
    const outcome = await processObject({ bucket: t.bucket, key }, t.s3, ctxFor(parseLakeKey(key)!.db));
    if (outcome.kind === 'merged') events += outcome.events.length;
    else failed.push({ object: key, kind: outcome.kind, reason: outcome.reason });
    out.progress(`replaying the lake: ${i + 1}/${keys.length} objects, ${count(events)} events`);
  }
  out.done();
  const report = {
    window,
    table: opts.table ? `${opts.table.db}.${opts.table.table}` : null,
    objects: keys.length,
    events,
    failed,
  };
  out.result(report);
  out.say(
    `replayed ${keys.length - failed.length} of ${keys.length} lake objects (${count(events)} events) of ${report.table ?? 'every table'} for ${window}`,
  );
  for (const f of failed) out.say(`  not applied (${f.kind}): ${f.object}: ${f.reason}`);
  return failed.length > 0 ? 1 : 0;
}
