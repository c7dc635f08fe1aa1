/**
 * The runtime check of the change-event contract: change-event.schema.json itself, compiled once with Ajv, plus the one
 * rule JSON Schema cannot state (each key column is present and not null in the row's identifying image). So a reader
 * (the merge, `npx cdc rebuild`, the local Firehose stand-in through the merge) accepts what the published schema
 * accepts; test/shared/change-event-check.test.ts holds the two together over a table of valid and invalid events.
 * Kept apart from change-event.ts so that the producer, which writes events and never reads them, does not bundle Ajv.
 */
import Ajv2020, { type ErrorObject } from 'ajv/dist/2020';
import { type ChangeEvent, keyImage, READABLE_EVENT_VERSIONS } from './change-event';
import schema from './change-event.schema.json';

export type ChangeEventCheck =
  | { readonly ok: true; readonly event: ChangeEvent }
  /** `version`: an event of a contract version this reader does not know (a newer producer); `invalid`: anything else. */
  | { readonly ok: false; readonly problem: 'version' | 'invalid'; readonly message: string };

// strictTypes/strictRequired off: the schema's if/then parts narrow properties typed at the top level, which is valid
// JSON Schema that those two lints flag. The other strict checks (unknown keywords, bad formats) stay on.
const validate = new Ajv2020({ strictTypes: false, strictRequired: false }).compile<ChangeEvent>(schema);

/** Checks one parsed JSON document against the contract; the message names the field, its value and the rule. */
export function checkChangeEvent(doc: unknown): ChangeEventCheck {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return invalid('not a JSON object');
  const v = (doc as { v?: unknown }).v;
  // Before the schema: a newer version may carry fields this schema does not know, and is a different failure.
  if (typeof v !== 'number' || !READABLE_EVENT_VERSIONS.includes(v)) {
    return { ok: false, problem: 'version', message: `event version ${JSON.stringify(v)}` };
  }
  if (!validate(doc)) return invalid(describe(validate.errors ?? [], doc));
  const image = keyImage(doc);
  if (image) {
    for (const k of doc.pk) {
      if (!(k in image) || image[k] === null) return invalid(`primary key column ${JSON.stringify(k)} missing or null`);
    }
  }
  return { ok: true, event: doc };
}

function invalid(message: string): ChangeEventCheck {
  return { ok: false, problem: 'invalid', message };
}

function describe(errors: readonly ErrorObject[], doc: object): string {
  // Ajv lists the innermost failure first and the if/then around it after; a oneOf (column changes) fails as a whole,
  // and its first branch's complaint would mislead.
  const e = errors.find((x) => x.keyword === 'oneOf') ?? errors[0];
  if (!e) return 'does not match change-event.schema.json';
  const op = (doc as { op?: unknown }).op;
  const subject = typeof op === 'string' ? `${op} event` : 'event';
  const field = e.instancePath === '' ? '' : ` ${e.instancePath.slice(1).replaceAll('/', '.')}`;
  const value = e.instancePath === '' ? '' : ` ${preview(valueAt(doc, e.instancePath))}`;
  return `${subject}:${field}${value} ${e.message ?? 'is invalid'}${detail(e)}`;
}

function detail(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'enum') return ` (${(p.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')})`;
  if (e.keyword === 'const') return ` (${JSON.stringify(p.allowedValue)})`;
  if (e.keyword === 'additionalProperties') return ` (${JSON.stringify(p.additionalProperty)})`;
  return '';
}

function valueAt(doc: object, pointer: string): unknown {
  let at: unknown = doc;
  for (const part of pointer.slice(1).split('/')) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  return at;
}

function preview(value: unknown): string {
  const json = JSON.stringify(value) ?? 'undefined';
  return json.length > 120 ? `${json.slice(0, 120)}…` : json;
}
