/**
 * `cdc validate <db.table> [--chunk-rows N] [--lag-window S]`: compares the source table and its replica by row count
 * and by a checksum per chunk of the primary key (the source's key order, contiguous ranges so every replica row
 * falls in exactly one chunk). Chunks that differ are checked again after the lag window, since changes in flight
 * reach the replica within seconds; ranges that still differ are printed with their missing, extra and changed keys,
 * and the exit code is 1. Values are compared in canonical form (row-text.ts: exact, per type, never a lossy text).
 * Columns whose replica type differs from the source's (hashed or masked by the capture rules, or changed since) are
 * listed as skipped instead of compared.
 *
 * A table without a primary key is compared as a multiset (`compareMultiset`): each distinct row's canonical text with
 * the number of times it occurs, the source's whole table against the replica view's rows and their `_cdc_count`.
 * Both sides are held in memory (one entry per distinct row).
 */
import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import { keysetPredicate } from '../../../containers/producer/src/chunk-query';
import type { TableShape } from '../../../containers/producer/src/event-encoder';
import { SnapshotReader } from '../../../containers/producer/src/snapshot-reader';
import { CliError } from '../errors';
import { count, type Output } from '../output';
import {
  type Canonical,
  type CompareColumn,
  compareColumn,
  replicaExpression,
  replicaText,
  sourceText,
  warehouseKeyLiteral,
} from '../row-text';
import type { Target } from '../target';

export interface ValidateOptions {
  readonly db: string;
  readonly table: string;
  /** @default 10000 */
  readonly chunkRows?: number;
  /** Seconds to wait before checking differing chunks again. @default 15 */
  readonly lagWindowS?: number;
}

type Key = readonly unknown[];

interface Chunk {
  /** Exclusive lower bound (undefined: from the start). */
  readonly after: Key | undefined;
  /** Inclusive upper bound (undefined: to the end). */
  readonly upTo: Key | undefined;
  sourceRows: number;
  replicaRows: number;
  same: boolean;
}

export interface RangeDifference {
  readonly after: string;
  readonly upTo: string;
  readonly sourceRows: number;
  readonly replicaRows: number;
  readonly missing: string[];
  readonly extra: string[];
  readonly changed: { key: string; columns: string[] }[];
}

export interface ValidateReport {
  readonly table: string;
  readonly replica: string;
  readonly sourceRows: number;
  readonly replicaRows: number;
  readonly chunks: number;
  readonly compared: string[];
  readonly skipped: { column: string; why: string }[];
  readonly rechecked: number;
  readonly differences: RangeDifference[];
  readonly ok: boolean;
}

const SAMPLES = 5;
const wIdent = (n: string) => `"${n.replace(/"/g, '""')}"`;

function digest(rows: Map<string, string>): string {
  const h = createHash('sha256');
  for (const k of [...rows.keys()].sort()) h.update(`${k}\u0001${rows.get(k)}\n`);
  return h.digest('hex');
}

export async function validate(t: Target, opts: ValidateOptions, out: Output): Promise<number> {
  const chunkRows = opts.chunkRows ?? 10_000;
  const name = `${opts.db}.${opts.table}`;
  // Spatial values as the server's bytes: mysql2 would parse them into objects (and lose the SRID).
  const reader = await SnapshotReader.connect({ ...t.source, rawSpatial: true });
  try {
    const shape = await reader.describe(opts.db, opts.table);
    if (!shape) throw new CliError('NOT_FOUND', `${name} does not exist in the source`);
    const schema = t.replicaSchema(opts.db);
    const replica = `${wIdent(schema)}.${wIdent(opts.table)}`;
    const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
    const replicaCols = new Map(
      (
        await t.warehouse.query(
          `SELECT column_name, data_type, udt_name FROM information_schema.columns WHERE table_schema = ${lit(schema)} AND table_name = ${lit(opts.table)}`,
        )
      ).map((r) => [
        String(r.column_name),
        String(r.data_type) === 'USER-DEFINED' ? String(r.udt_name) : String(r.data_type),
      ]),
    );
    if (replicaCols.size === 0) throw new CliError('NOT_FOUND', `no replica ${schema}.${opts.table} in the warehouse`);
    const registered = new Map(
      (
        await t.warehouse
          .query(
            `SELECT column_name, mysql_type FROM "${t.changelogSchema}".replica_columns WHERE source_db = ${lit(opts.db)} AND source_table = ${lit(opts.table)}`,
          )
          .catch(() => [])
      ).map((r) => [String(r.column_name), String(r.mysql_type)]),
    );
    const skipped: { column: string; why: string }[] = [];
    const columns: CompareColumn[] = [];
    for (const c of shape.columns) {
      const reg = registered.get(c.name);
      if (!replicaCols.has(c.name)) skipped.push({ column: c.name, why: 'not in the replica (excluded)' });
      else if (reg && !sameColumnType(reg, c.type) && !shape.pk.includes(c.name)) {
        skipped.push({ column: c.name, why: `replica type ${reg} ≠ source ${c.type} (hashed, masked or changed)` });
      } else {
        try {
          columns.push(compareColumn(c.name, c.type, replicaCols.get(c.name)));
        } catch (err) {
          skipped.push({ column: c.name, why: (err as Error).message });
        }
      }
    }
    if (shape.pk.length === 0) {
      return await compareMultiset({ t, reader, shape, columns, skipped, replica, name, schema, opts }, out);
    }
    const keyCols = shape.pk.map((k) => columns.find((c) => c.name === k)!);
    if (keyCols.some((c) => !c || c.kind === 'base64')) {
      throw new CliError('REFUSED', `${name}: binary or uncompared primary key columns cannot be ranged over`);
    }
    // String keys sort by collation, differently in MySQL and the warehouse: one range then, sorted in memory.
    const byRange = keyCols.every((c) => c.kind !== 'string');
    const sub: TableShape = { ...shape, columns: columns.map((c) => ({ name: c.name, type: c.type })) };
    // JSON arrays of canonical values: no separator a value could contain, NULL distinct from every text.
    const keyText = (row: Record<string, unknown>) => JSON.stringify(keyCols.map((c) => sourceText(c, row[c.name])));
    const rowText = (row: Record<string, unknown>, text: (c: CompareColumn, v: unknown) => Canonical) =>
      JSON.stringify(columns.map((c) => text(c, row[c.name])));
    const showKey = (text: string) => (JSON.parse(text) as Canonical[]).map((v) => v ?? 'NULL').join(',');

    const pkSql = keysetPredicate(shape.pk);
    const mysqlUpTo = (upTo: Key) => mysql.format(`NOT ${pkSql.sql}`, pkSql.params(upTo) as never[]);
    const warehouseRange = (after: Key | undefined, upTo: Key | undefined) => {
      const gt = (key: Key) => {
        const parts = keyCols.map((c, i) => {
          const eq = keyCols.slice(0, i).map((p, j) => `${wIdent(p.name)} = ${warehouseKeyLiteral(p, key[j])}`);
          const cmp = `${wIdent(c.name)} > ${warehouseKeyLiteral(c, key[i])}`;
          return eq.length > 0 ? `(${eq.join(' AND ')} AND ${cmp})` : cmp;
        });
        return `(${parts.join(' OR ')})`;
      };
      const conds = [...(after ? [gt(after)] : []), ...(upTo ? [`NOT ${gt(upTo)}`] : [])];
      return conds.length > 0 ? ` WHERE ${conds.join(' AND ')}` : '';
    };
    const select = `SELECT ${columns.map((c) => `${replicaExpression(c, t.warehouse.dialect.warehouse)} AS ${wIdent(c.name)}`).join(', ')} FROM ${replica}`;

    const sourceRange = async (after: Key | undefined, upTo: Key | undefined) => {
      const rows = new Map<string, string>();
      let cursor = after;
      for (;;) {
        const part = await reader.readChunk(sub, cursor as never, upTo ? mysqlUpTo(upTo) : undefined, chunkRows);
        for (const r of part) rows.set(keyText(r), rowText(r, sourceText));
        if (part.length < chunkRows) return rows;
        const last = part.at(-1)!;
        cursor = shape.pk.map((k) => last[k]);
      }
    };
    const replicaRange = async (after: Key | undefined, upTo: Key | undefined) => {
      const rows = new Map<string, string>();
      for (const r of await t.warehouse.query(select + warehouseRange(after, upTo))) {
        rows.set(JSON.stringify(keyCols.map((c) => replicaText(c, r[c.name]))), rowText(r, replicaText));
      }
      return rows;
    };

    // Pass 1: one chunk per chunkRows source rows, in the source's key order.
    const chunks: Chunk[] = [];
    let after: Key | undefined;
    let sourceTotal = 0;
    for (;;) {
      const part = byRange ? await reader.readChunk(sub, after as never, undefined, chunkRows) : [];
      const last = part.length === chunkRows ? part.at(-1) : undefined;
      const upTo = last ? shape.pk.map((k) => last[k]) : undefined;
      const src = new Map<string, string>();
      if (byRange) for (const r of part) src.set(keyText(r), rowText(r, sourceText));
      const s = byRange ? src : await sourceRange(undefined, undefined);
      const rep = await replicaRange(after, upTo);
      sourceTotal += s.size;
      chunks.push({ after, upTo, sourceRows: s.size, replicaRows: rep.size, same: digest(s) === digest(rep) });
      out.progress(`${name}: ${chunks.length} chunks, ${count(sourceTotal)} rows compared`);
      if (!upTo) break;
      after = upTo;
    }
    out.done();

    // Pass 2: differing chunks again after the lag window, with the differing keys.
    let differing = chunks.filter((c) => !c.same);
    const rechecked = differing.length;
    if (differing.length > 0 && (opts.lagWindowS ?? 15) > 0) {
      out.progress(
        `${differing.length} chunk(s) differ; checking them again in ${opts.lagWindowS ?? 15} s (changes in flight)`,
      );
      await new Promise((r) => setTimeout(r, (opts.lagWindowS ?? 15) * 1000));
      out.done();
    }
    const differences: RangeDifference[] = [];
    const showBound = (k: Key | undefined, end: string) =>
      k ? keyCols.map((c, i) => sourceText(c, k[i]) ?? 'NULL').join(',') : end;
    for (const c of differing) {
      const s = await sourceRange(c.after, c.upTo);
      const r = await replicaRange(c.after, c.upTo);
      c.sourceRows = s.size;
      c.replicaRows = r.size;
      c.same = digest(s) === digest(r);
      if (c.same) continue;
      const missing = [...s.keys()].filter((k) => !r.has(k));
      const extra = [...r.keys()].filter((k) => !s.has(k));
      const changed = [...s.keys()]
        .filter((k) => r.has(k) && r.get(k) !== s.get(k))
        .map((k) => {
          const a = JSON.parse(s.get(k)!) as Canonical[];
          const b = JSON.parse(r.get(k)!) as Canonical[];
          return { key: showKey(k), columns: columns.filter((_, i) => a[i] !== b[i]).map((col) => col.name) };
        });
      differences.push({
        after: showBound(c.after, '-∞'),
        upTo: showBound(c.upTo, '+∞'),
        sourceRows: s.size,
        replicaRows: r.size,
        missing: missing.slice(0, SAMPLES).map(showKey),
        extra: extra.slice(0, SAMPLES).map(showKey),
        changed: changed.slice(0, SAMPLES),
      });
    }
    differing = chunks.filter((c) => !c.same);
    const [[{ n: srcCount }]] = (await reader.connection.query(
      `SELECT COUNT(*) AS n FROM \`${opts.db}\`.\`${opts.table}\``,
    )) as unknown as [[{ n: number }]];
    const [{ n: repCount }] = (await t.warehouse.query(`SELECT COUNT(*) AS n FROM ${replica}`)) as [{ n: unknown }];
    const report: ValidateReport = {
      table: name,
      replica: `${schema}.${opts.table}`,
      sourceRows: Number(srcCount),
      replicaRows: Number(repCount),
      chunks: chunks.length,
      compared: columns.map((c) => c.name),
      skipped,
      rechecked,
      differences,
      ok: differences.length === 0,
    };
    out.result(report);
    out.say(
      `${name} vs ${report.replica}: ${count(report.sourceRows)} source rows, ${count(report.replicaRows)} replica rows, ${report.chunks} chunk(s) of ≤ ${count(chunkRows)} keys, ${columns.length} column(s) compared`,
    );
    for (const s of skipped) out.say(`  skipped ${s.column}: ${s.why}`);
    if (report.ok) {
      out.say(rechecked > 0 ? `OK (${rechecked} chunk(s) differed at first and caught up)` : 'OK: identical');
      return 0;
    }
    out.say(`DIFFERENT: ${differences.length} key range(s) still differ after the lag window:`);
    for (const d of differences) {
      out.say(`  keys (${d.after}, ${d.upTo}]: source ${d.sourceRows} rows, replica ${d.replicaRows} rows`);
      if (d.missing.length > 0) out.say(`    missing in the replica: ${d.missing.join('; ')}`);
      if (d.extra.length > 0) out.say(`    only in the replica: ${d.extra.join('; ')}`);
      for (const c of d.changed) out.say(`    key ${c.key} differs in ${c.columns.join(', ')}`);
    }
    return 1;
  } finally {
    await reader.close();
  }
}

interface MultisetInput {
  readonly t: Target;
  readonly reader: SnapshotReader;
  readonly shape: TableShape;
  readonly columns: readonly CompareColumn[];
  readonly skipped: readonly { column: string; why: string }[];
  readonly replica: string;
  readonly name: string;
  readonly schema: string;
  readonly opts: ValidateOptions;
}

/** Counts per row text that differ between two multisets: `[row, source count, replica count]`. */
export function multisetDifferences(
  source: ReadonlyMap<string, number>,
  replica: ReadonlyMap<string, number>,
): [row: string, source: number, replica: number][] {
  const out: [string, number, number][] = [];
  for (const [row, n] of source) if ((replica.get(row) ?? 0) !== n) out.push([row, n, replica.get(row) ?? 0]);
  for (const [row, n] of replica) if (!source.has(row)) out.push([row, 0, n]);
  return out;
}

/** A keyless table against its replica view, as multisets of rows (module comment). */
async function compareMultiset(input: MultisetInput, out: Output): Promise<number> {
  const { t, reader, shape, columns, skipped, replica, name, schema, opts } = input;
  const sub: TableShape = { ...shape, columns: columns.map((c) => ({ name: c.name, type: c.type })) };
  const rowText = (row: Record<string, unknown>, text: (c: CompareColumn, v: unknown) => Canonical) =>
    JSON.stringify(columns.map((c) => text(c, row[c.name])));
  const count_ = wIdent('_cdc_count');
  const select = `SELECT ${columns.map((c) => `${replicaExpression(c, t.warehouse.dialect.warehouse)} AS ${wIdent(c.name)}`).join(', ')}, ${count_} FROM ${replica}`;
  const read = async () => {
    const source = new Map<string, number>();
    // The whole table at once: there is no key to page by (MySQL's LIMIT takes up to 2^64 - 1).
    for (const r of await reader.readChunk(sub, undefined, undefined, Number.MAX_SAFE_INTEGER)) {
      const k = rowText(r, sourceText);
      source.set(k, (source.get(k) ?? 0) + 1);
    }
    const rep = new Map<string, number>();
    for (const r of await t.warehouse.query(select)) {
      const k = rowText(r, replicaText);
      rep.set(k, (rep.get(k) ?? 0) + Number(r._cdc_count));
    }
    return { source, rep };
  };
  const total = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  out.progress(`${name}: reading the whole table (no primary key: compared as a multiset of rows)`);
  let { source, rep } = await read();
  out.done();
  let diffs = multisetDifferences(source, rep);
  const rechecked = diffs.length > 0 ? 1 : 0;
  if (diffs.length > 0 && (opts.lagWindowS ?? 15) > 0) {
    out.progress(`${diffs.length} row(s) differ; checking again in ${opts.lagWindowS ?? 15} s (changes in flight)`);
    await new Promise((r) => setTimeout(r, (opts.lagWindowS ?? 15) * 1000));
    ({ source, rep } = await read());
    diffs = multisetDifferences(source, rep);
    out.done();
  }
  const show = (row: string, n: number) =>
    `${(JSON.parse(row) as Canonical[]).map((v) => v ?? 'NULL').join(',')}${n > 1 ? ` ×${n}` : ''}`;
  const missing = diffs.filter(([, a, b]) => a > b).map(([row, a, b]) => show(row, a - b));
  const extra = diffs.filter(([, a, b]) => b > a).map(([row, a, b]) => show(row, b - a));
  const differences: RangeDifference[] =
    diffs.length === 0
      ? []
      : [
          {
            after: '-∞',
            upTo: '+∞',
            sourceRows: total(source),
            replicaRows: total(rep),
            missing: missing.slice(0, SAMPLES),
            extra: extra.slice(0, SAMPLES),
            changed: [],
          },
        ];
  const report: ValidateReport = {
    table: name,
    replica: `${schema}.${shape.table}`,
    sourceRows: total(source),
    replicaRows: total(rep),
    chunks: 1,
    compared: columns.map((c) => c.name),
    skipped: [...skipped],
    rechecked,
    differences,
    ok: differences.length === 0,
  };
  out.result(report);
  out.say(
    `${name} vs ${report.replica}: ${count(report.sourceRows)} source rows, ${count(report.replicaRows)} replica rows (no primary key: compared as multisets, ${count(source.size)} distinct rows), ${columns.length} column(s) compared`,
  );
  for (const sk of skipped) out.say(`  skipped ${sk.column}: ${sk.why}`);
  if (report.ok) {
    out.say(rechecked > 0 ? 'OK (rows differed at first and caught up)' : 'OK: identical');
    return 0;
  }
  out.say(`DIFFERENT: ${diffs.length} distinct row(s) occur a different number of times after the lag window:`);
  if (missing.length > 0) out.say(`  missing in the replica: ${missing.slice(0, SAMPLES).join('; ')}`);
  if (extra.length > 0) out.say(`  only in the replica: ${extra.slice(0, SAMPLES).join('; ')}`);
  return 1;
}

/**
 * Whether the replica's registered MySQL type is the source's. MariaDB's metadata (information_schema, SHOW CREATE
 * TABLE) writes each 4-byte character of an ENUM or SET definition as '?', while the binlog's table map carries it
 * whole, so the registry holds whichever form reached the merge first: the two forms count as the same type.
 */
export function sameColumnType(registered: string, source: string): boolean {
  if (registered === source) return true;
  const asMetadata = (t: string) => t.replace(/[\u{10000}-\u{10FFFF}]/gu, '?');
  return asMetadata(registered) === asMetadata(source);
}
