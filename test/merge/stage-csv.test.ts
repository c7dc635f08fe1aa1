import { describe, expect, it } from 'vitest';
import { configureDateValues, type NulledValue, type SkippedRow } from '../../lambdas/merge/src/date-values';
import type { Dialect } from '../../lambdas/merge/src/dialect';
import { postgresDialect } from '../../lambdas/merge/src/dialect-postgres';
import { redshiftDialect } from '../../lambdas/merge/src/dialect-redshift';
import { buildStageCsv, csvField, keyChanged, keyProblem, stageCsvChunks } from '../../lambdas/merge/src/stage-csv';
import { modelFromEvents, type TableModel } from '../../lambdas/merge/src/table-model';
import { configureValueLimits, limitValue, type TruncatedValue } from '../../lambdas/merge/src/value-limits';
import { type ChangeEvent, keyImage, type RowImage } from '../../shared/change-event';
import { TableEvents } from './support/event-factory';

const rs = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/cdc-copy' });

/**
 * The staging CSV as the merge built it before its per-column formatters (one `limitValue` + `csvField` per value,
 * one array per row): the specification the fast builder must match byte for byte.
 */
function referenceCsv(events: readonly ChangeEvent[], model: TableModel, d: Dialect): string {
  const q = (t: string) => `"${t.replace(/"/g, '""')}"`;
  const row = (image: RowImage, e: ChangeEvent, delta?: number, op: string = e.op) => {
    const where = `${e.db}.${e.table} at ${e.position}`;
    const ref = { where, key: model.pk.map((k) => image[k]) };
    const fields = model.columns.map((c) => csvField(c, limitValue(c, image[c.name], d.warehouse, ref), d, where));
    fields.push(q(e.position), q(op), q(new Date(e.ts_ms).toISOString().replace('T', ' ').replace('Z', '+00')));
    if (delta !== undefined) fields.push(String(delta));
    return fields.join(',');
  };
  const lines: string[] = [];
  for (const e of events) {
    if (model.pk.length === 0) {
      if (e.before && (e.op === 'update' || e.op === 'delete')) lines.push(row(e.before, e, -1));
      if (e.after && e.op !== 'delete') lines.push(row(e.after, e, 1));
      continue;
    }
    const keyed = (image: RowImage, op?: string) => {
      if (keyProblem(model, image, d) === undefined) lines.push(row(image, e, undefined, op));
    };
    if (e.op === 'update' && e.before && e.after && keyChanged(model.pk, e.before, e.after)) keyed(e.before, 'delete');
    const image = keyImage(e);
    if (image) keyed(image);
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

const ALL_TYPES = {
  id: 'bigint(20)',
  n: 'int(11)',
  f: 'double',
  dec: 'decimal(12,2)',
  label: 'varchar(8)',
  body: 'text',
  day: 'date',
  at: 'datetime(6)',
  ts: 'timestamp(3)',
  dur: 'time',
  flags: 'bit(4)',
  blob: 'varbinary(16)',
  doc: 'json',
  kind: "enum('a','b')",
};

/** Values of every kind, the common ones and the ones that take the general way (NULLs, quotes, odd dates, …). */
function allTypeEvents(): ChangeEvent[] {
  const t = new TableEvents('shop', 'every', ALL_TYPES);
  const base: RowImage = {
    id: '1',
    n: 7,
    f: 1.5,
    dec: '12.50',
    label: 'plain',
    body: 'some text',
    day: '2026-11-30',
    at: '2026-11-30 10:11:12.123456',
    ts: '2026-11-30T10:11:12.123Z',
    dur: '-838:59:59',
    flags: '0101',
    blob: Buffer.from('bytes').toString('base64'),
    doc: { a: [1, 'x"y'] },
    kind: 'a',
  };
  const odd: RowImage[] = [
    { id: '2', n: null, f: -0.25, dec: 3, label: 'say "hi"', body: '', day: '0000-00-00', at: '2024-02-29 00:00:00' },
    {
      id: '3',
      n: 2147483647,
      dec: '-0.01',
      label: 'a\u0000b',
      body: '\\N',
      day: '2024-02-30',
      at: '2023-02-29 01:02:03',
    },
    {
      id: '4',
      f: 1e21,
      label: 'ünï',
      body: 'a,b\nc',
      day: '2024-12-31',
      at: '2024-01-31 23:59:59',
      ts: '0000-00-00 00:00:00',
    },
    { id: '5', dec: '100', label: 'x'.repeat(8), day: '0001-01-01', at: '9999-12-31 23:59:59.999999', flags: '1' },
    { id: '9007199254740993', n: -5, day: '2024-00-15', at: '2024-13-01 00:00:00', ts: '2024-02-29T00:00:00Z' },
    { id: '6', doc: null, blob: null, dur: null, flags: null, kind: null, ts: null, at: null, day: null },
  ];
  return [
    t.insert(base),
    ...odd.map((o) => t.insert({ ...base, ...o })),
    t.update(base, { ...base, label: 'changed' }),
    // A key change: staged as a delete of the old key and a write of the new one.
    t.update({ ...base, id: '2' }, { ...base, id: '20' }),
    t.delete({ ...base, id: '3' }),
  ];
}

describe('staging CSV', () => {
  it('builds the same text, byte for byte, as one limitValue and csvField per value, for every kind and dialect', () => {
    const events = allTypeEvents();
    for (const d of [postgresDialect, rs]) {
      const model = modelFromEvents(events, d.warehouse);
      const expected = referenceCsv(events, model, d);
      expect(buildStageCsv(events, model, d)).toBe(expected);
    }
  });

  it('builds the same text as the reference for a table without a primary key (one delta row per image)', () => {
    const t = new TableEvents('shop', 'log', { who: 'varchar(20)', at: 'timestamp' }, []);
    const events = [
      t.insert({ who: 'a', at: '2026-01-01T00:00:00Z' }),
      t.update({ who: 'a', at: '2026-01-01T00:00:00Z' }, { who: 'b"', at: '2026-01-02T00:00:00Z' }),
      t.delete({ who: 'b"', at: '2026-01-02T00:00:00Z' }),
    ];
    for (const d of [postgresDialect, rs]) {
      const model = modelFromEvents(events, d.warehouse);
      expect(buildStageCsv(events, model, d)).toBe(referenceCsv(events, model, d));
    }
  });

  it('reports the same nulled, truncated and skipped values as the reference, with their row and column', () => {
    const t = new TableEvents('shop', 'notes', { id: 'varchar(4)', v: 'varchar(4)', day: 'date' });
    const events = [
      t.insert({ id: 'a', v: 'x'.repeat(20), day: '0000-00-00' }),
      t.insert({ id: 'b\u0000', v: 'x', day: '2026-01-01' }), // a key the warehouse cannot hold: skipped
    ];
    const seen = () => {
      const nulled: NulledValue[] = [];
      const skipped: SkippedRow[] = [];
      const truncated: TruncatedValue[] = [];
      configureDateValues({ onNulled: (v) => nulled.push(v), onRowSkipped: (r) => skipped.push(r) });
      configureValueLimits({ policy: 'truncate', onTruncated: (v) => truncated.push(v) });
      return { nulled, skipped, truncated };
    };
    try {
      const model = modelFromEvents(events, 'redshift');
      const ours = seen();
      const csv = buildStageCsv(events, model, rs);
      const ref = seen();
      expect(csv).toBe(referenceCsv(events, model, rs));
      expect(ours.truncated).toEqual(ref.truncated);
      expect(ours.nulled).toEqual(ref.nulled);
      expect(ours.truncated[0]).toMatchObject({ column: 'v', bytes: 20, limit: 16 });
      expect(ours.skipped).toEqual([
        { where: `shop.notes at ${events[1]!.position}`, key: ['b\u0000'], reason: 'NUL character in key column id' },
      ]);
    } finally {
      configureDateValues({});
      configureValueLimits({ policy: 'truncate' });
    }
  });

  it('yields whole rows in chunks that join to the whole text', () => {
    const events = allTypeEvents();
    const model = modelFromEvents(events, 'postgres');
    const chunks = [...stageCsvChunks(events, model, postgresDialect, { chunkBytes: 100 })];
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks) expect(c.at(-1)).toBe(0x0a);
    expect(Buffer.concat(chunks).toString('utf8')).toBe(buildStageCsv(events, model, postgresDialect));
  });

  it('stages only the newest change of each key with latestPerKey, whatever the order of the events', () => {
    const t = new TableEvents('shop', 'orders', { id: 'bigint(20)', v: 'varchar(10)' });
    const events = [
      t.insert({ id: '1', v: 'a' }),
      t.update({ id: '1', v: 'a' }, { id: '1', v: 'b' }),
      t.insert({ id: '2', v: 'c' }),
      t.delete({ id: '1', v: 'b' }),
      // The key changes from 2 to 3: 2 is staged as deleted at this position, 3 as written.
      t.update({ id: '2', v: 'c' }, { id: '3', v: 'c' }),
    ];
    // An int key as a JSON number and as text is one key: keys compare by the text the warehouse loads.
    events.push({ ...t.update({ id: '3', v: 'c' }, { id: '3', v: 'd' }), after: { id: 3, v: 'd' } });
    const model = modelFromEvents(events, 'postgres');
    for (const order of [events, [...events].reverse()]) {
      const rows = buildStageCsv(order, model, postgresDialect, { latestPerKey: true })
        .trimEnd()
        .split('\n')
        .map((l) => l.split(',').slice(0, 4).join(','))
        .sort();
      expect(rows).toEqual([
        `1,"b","${events[3]!.position}","delete"`,
        `2,"c","${events[4]!.position}","delete"`,
        `3,"d","${events[5]!.position}","update"`,
      ]);
    }
  });
});
