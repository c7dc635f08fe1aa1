import { gunzipSync } from 'node:zlib';
import { type ChangeEvent, READABLE_EVENT_VERSIONS } from '../../../shared/change-event';
import { checkChangeEvent } from '../../../shared/change-event-check';
import { PoisonBatchError } from './errors';

/** Decompresses an object body when it is gzip (magic bytes), otherwise reads it as UTF-8. */
export function decodeBody(body: Uint8Array): string {
  const buf = Buffer.from(body);
  const text = buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
  return text.toString('utf8');
}

function fail(source: string, line: number, why: string): never {
  throw new PoisonBatchError('BATCH_UNDECODABLE', `${source} line ${line}: ${why}`);
}

/**
 * Parses newline-delimited change events and checks each against the contract (`checkEvent`).
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

/**
 * Checks one parsed document against the contract (shared/change-event-check.ts: the published JSON Schema and the key
 * rule): an unknown version is BATCH_UNSUPPORTED_VERSION (a newer producer), anything else BATCH_UNDECODABLE.
 * @throws PoisonBatchError naming the source, the line and what is wrong
 */
export function checkEvent(doc: unknown, source: string, line: number): ChangeEvent {
  const checked = checkChangeEvent(doc);
  if (checked.ok) return checked.event;
  if (checked.problem === 'version') {
    throw new PoisonBatchError(
      'BATCH_UNSUPPORTED_VERSION',
      `${source} line ${line}: ${checked.message}, this merge understands ${READABLE_EVENT_VERSIONS.join(', ')}`,
    );
  }
  return fail(source, line, checked.message);
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
