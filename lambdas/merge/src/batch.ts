import { gunzipSync } from 'node:zlib';
import {
  type ChangeEvent,
  isTableOp,
  POSITION_PATTERN,
  READABLE_EVENT_VERSIONS,
  TABLE_OPS,
} from '../../../shared/change-event';
import { PoisonBatchError } from './errors';

const OPS = new Set<string>(['insert', 'update', 'delete', 'read', ...TABLE_OPS]);

/** Decompresses an object body when it is gzip (magic bytes), otherwise reads it as UTF-8. */
export function decodeBody(body: Uint8Array): string {
  const buf = Buffer.from(body);
  const text = buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
  return text.toString('utf8');
}

function fail(source: string, line: number, why: string): never {
  throw new PoisonBatchError('BATCH_UNDECODABLE', `${source} line ${line}: ${why}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses newline-delimited change events and checks each against the contract (the checks the merge relies on).
 * Firehose may concatenate records without a separator when the producer omitted the newline, so a line holding
 * several JSON documents back to back is split too.
 * @throws PoisonBatchError naming the source, the line and what is wrong
 */
export function parseBatch(text: string, source: string): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let docs: unknown[];
    try {
      docs = [JSON.parse(line)];
    } catch {
      docs = splitConcatenated(line) ?? fail(source, i + 1, `not JSON: ${JSON.stringify(line.slice(0, 120))}`);
    }
    for (const doc of docs) events.push(checkEvent(doc, source, i + 1));
  }
  return events;
}

function splitConcatenated(line: string): unknown[] | undefined {
  const parts = line.replace(/}\s*{/g, '}\n{').split('\n');
  if (parts.length < 2) return undefined;
  try {
    return parts.map((p) => JSON.parse(p) as unknown);
  } catch {
    return undefined;
  }
}

export function checkEvent(doc: unknown, source: string, line: number): ChangeEvent {
  if (!isObject(doc)) fail(source, line, 'not a JSON object');
  if (typeof doc.v !== 'number' || !READABLE_EVENT_VERSIONS.includes(doc.v)) {
    throw new PoisonBatchError(
      'BATCH_UNSUPPORTED_VERSION',
      `${source} line ${line}: event version ${JSON.stringify(doc.v)}, this merge understands ${READABLE_EVENT_VERSIONS.join(', ')}`,
    );
  }
  if (typeof doc.op !== 'string' || !OPS.has(doc.op))
    fail(source, line, `op ${JSON.stringify(doc.op)} is not one of ${[...OPS].join('/')}`);
  for (const f of ['db', 'table', 'tx'] as const) {
    if (typeof doc[f] !== 'string' || doc[f] === '')
      fail(source, line, `${f} ${JSON.stringify(doc[f])} is not a non-empty string`);
  }
  if (typeof doc.position !== 'string' || !POSITION_PATTERN.test(doc.position)) {
    fail(source, line, `position ${JSON.stringify(doc.position)} does not match ${POSITION_PATTERN}`);
  }
  if (!Array.isArray(doc.pk) || !doc.pk.every((k) => typeof k === 'string'))
    fail(source, line, 'pk is not an array of column names');
  if (typeof doc.ts_ms !== 'number') fail(source, line, `ts_ms ${JSON.stringify(doc.ts_ms)} is not a number`);
  if (isTableOp(doc.op as ChangeEvent['op'])) {
    if (doc.v === 1) fail(source, line, `op ${doc.op} needs event version 2`);
    if (!isObject(doc.change)) fail(source, line, `${doc.op} event without its change`);
    if (doc.op === 'rename' && !isObject(doc.change.rename_to)) fail(source, line, 'rename event without rename_to');
    if (doc.op === 'alter' && !Array.isArray(doc.change.columns)) fail(source, line, 'alter event without columns');
    if (doc.op === 'range' && !isObject(doc.change.range)) fail(source, line, 'range event without range');
    return doc as unknown as ChangeEvent;
  }
  if (!Array.isArray(doc.columns) || doc.columns.length === 0) fail(source, line, 'columns is not a non-empty array');
  for (const c of doc.columns) {
    if (!isObject(c) || typeof c.name !== 'string' || typeof c.type !== 'string') {
      fail(source, line, `column ${JSON.stringify(c)} lacks name/type`);
    }
  }
  if (typeof doc.ts_ms !== 'number') fail(source, line, `ts_ms ${JSON.stringify(doc.ts_ms)} is not a number`);
  const image = doc.op === 'delete' ? doc.before : doc.after;
  if (doc.claim_check !== undefined) {
    if (!isObject(doc.claim_check)) fail(source, line, 'claim_check is not an object');
  } else if (!isObject(image)) {
    fail(source, line, `${doc.op} event without its ${doc.op === 'delete' ? 'before' : 'after'} image`);
  }
  if (isObject(image)) {
    for (const k of doc.pk as string[]) {
      if (!(k in image) || image[k] === null)
        fail(source, line, `primary key column ${JSON.stringify(k)} missing or null`);
    }
  }
  return doc as unknown as ChangeEvent;
}

/** Groups events by source table (`db.table`), keeping their order. */
export function groupByTable(events: readonly ChangeEvent[]): Map<string, ChangeEvent[]> {
  const groups = new Map<string, ChangeEvent[]>();
  for (const e of events) {
    const key = `${e.db}.${e.table}`;
    const g = groups.get(key);
    if (g) g.push(e);
    else groups.set(key, [e]);
  }
  return groups;
}
