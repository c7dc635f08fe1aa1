/**
 * A Kinesis stand-in for benchmarks only: a loopback HTTP endpoint speaking Kinesis' JSON 1.1 protocol
 * (`X-Amz-Target: Kinesis_20131202.PutRecords`, `application/x-amz-json-1.1`) that answers each PutRecords after a
 * fixed delay, throttles a share of its entries and can fail whole calls. It exists to measure the producer under
 * AWS-like latency without an emulator's CPU cost: kinesalite stores and indexes every record on the same 2 cores the
 * producer runs on; this one only counts a call's entries and keeps its body, unparsed, until the run is over. The
 * checks (each written entry's partition key and `position`, calls overlapping on a key) parse the kept bodies when
 * asked for, after the timed run: parsing them as they arrived took more CPU than the sender's own serialization. Tests of the producer keep
 * using the real emulator; this stores nothing readable and serves no other call.
 *
 * The client is the real AWS SDK v3 KinesisClient with the emulators' settings (shared/aws-client-config.ts), so
 * serialization, response parsing and the SDK's own retries of failed calls are real. Response shapes follow the
 * Kinesis API reference (PutRecords, PutRecordsResultEntry): a written entry has `SequenceNumber` and `ShardId`, a
 * failed one `ErrorCode` (`ProvisionedThroughputExceededException` with a message naming account, stream and shard)
 * and `ErrorMessage`, in request order, with `FailedRecordCount`; a whole-call failure is an HTTP 500 with
 * `{"__type":"InternalFailure"}`, which the SDK retries (3 attempts) before the caller sees it.
 *
 * `startLatencyKinesisInWorker` runs the same server on a worker thread, so that its request parsing does not take
 * event-loop time from the producer measured in the main thread (AWS's work happens on AWS's machines).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

export interface LatencyKinesisOptions {
  /** Milliseconds between a PutRecords request's arrival and its answer. @default 50 */
  readonly delayMs?: number;
  /** Share (0–1) of entries answered with ProvisionedThroughputExceededException (not written). @default 0 */
  readonly throttleShare?: number;
  /** Share (0–1) of whole calls answered with HTTP 500 InternalFailure (nothing written). @default 0 */
  readonly failCallShare?: number;
  /** Seed of the pseudo-random choice of throttled entries and failed calls, so runs are repeatable. @default 1 */
  readonly seed?: number;
}

/** One entry the stand-in wrote, in the order it wrote them. */
export interface Delivery {
  readonly partitionKey: string;
  /** The `position` of the change event in the entry's data ('' when the data holds none). */
  readonly position: string;
}

export interface LatencyKinesisStats {
  /** PutRecords calls received (failed ones included). */
  readonly calls: number;
  /** Entries received, resends included. */
  readonly entries: number;
  readonly written: number;
  readonly throttled: number;
  readonly failedCalls: number;
  /** The most PutRecords calls that were waiting for their answer at the same time. */
  readonly maxCallsInFlight: number;
  /** Calls that arrived while another call holding one of their partition keys was still unanswered. */
  readonly sameKeyOverlaps: number;
}

export interface LatencyKinesis {
  readonly endpoint: string;
  deliveries(): Promise<Delivery[]>;
  stats(): Promise<LatencyKinesisStats>;
  /** Forgets every call so far (after a warm-up), as if just started; the throttling draws go on. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

const POSITION_FIELD = Buffer.from('"position":"');
const POSITION_CHARS = 28;

/** Fails on a setting out of range, naming the field and the value. */
function validate(o: LatencyKinesisOptions): Required<LatencyKinesisOptions> {
  const delayMs = o.delayMs ?? 50;
  const throttleShare = o.throttleShare ?? 0;
  const failCallShare = o.failCallShare ?? 0;
  const seed = o.seed ?? 1;
  if (!Number.isFinite(delayMs) || delayMs < 0)
    throw new Error(`LATENCY_KINESIS_CONFIG: delayMs must be a finite number ≥ 0, got ${delayMs}`);
  for (const [field, v] of [
    ['throttleShare', throttleShare],
    ['failCallShare', failCallShare],
  ] as const)
    if (!(v >= 0 && v <= 1)) throw new Error(`LATENCY_KINESIS_CONFIG: ${field} must be between 0 and 1, got ${v}`);
  if (!Number.isInteger(seed)) throw new Error(`LATENCY_KINESIS_CONFIG: seed must be an integer, got ${seed}`);
  return { delayMs, throttleShare, failCallShare, seed };
}

/** mulberry32: a few integer operations per draw, repeatable for a seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The event's `position` from an entry's base64 data: one decode and one byte search, no JSON parse. */
function positionOf(base64: string): string {
  const data = Buffer.from(base64, 'base64');
  const at = data.indexOf(POSITION_FIELD);
  if (at < 0) return '';
  const from = at + POSITION_FIELD.length;
  return data.toString('latin1', from, from + POSITION_CHARS);
}

interface PutRecordsBody {
  readonly StreamName?: string;
  readonly Records?: readonly { readonly Data?: string; readonly PartitionKey?: string }[];
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Starts the stand-in on 127.0.0.1 (a free port) in this thread. */
/** A call as it arrived, kept for the checks made after the run (`deliveries`, `stats`). */
interface Call {
  /** The request body, unparsed: parsing 500 records' JSON and base64 during the run would take CPU from the sender. */
  readonly body: Buffer;
  /** Event counter at arrival and at the answer (the order in which calls overlapped). */
  readonly arrived: number;
  answered: number;
  /** Per entry, whether it was throttled (not written); undefined for a call failed whole. */
  readonly throttled: Uint8Array | undefined;
}

const PARTITION_KEY_FIELD = Buffer.from('"PartitionKey":"');
const STREAM_NAME_FIELD = Buffer.from('"StreamName":"');

/** Entries in a PutRecords body, counted without parsing it (a base64 string or an escaped key cannot hold `"PartitionKey":"`). */
function countEntries(body: Buffer): number {
  let n = 0;
  for (let at = body.indexOf(PARTITION_KEY_FIELD); at >= 0; at = body.indexOf(PARTITION_KEY_FIELD, at + 1)) n++;
  return n;
}

function streamNameOf(body: Buffer): string {
  const at = body.lastIndexOf(STREAM_NAME_FIELD);
  if (at < 0) return '';
  const from = at + STREAM_NAME_FIELD.length;
  return body.toString('utf8', from, body.indexOf(0x22, from));
}

export async function startLatencyKinesis(options: LatencyKinesisOptions = {}): Promise<LatencyKinesis> {
  const o = validate(options);
  const draw = random(o.seed);
  let log: Call[] = [];
  let clock = 0;
  let entries = 0;
  let written = 0;
  let throttled = 0;
  let failedCalls = 0;
  let inFlight = 0;
  let maxCallsInFlight = 0;
  let sequence = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    if (target !== 'Kinesis_20131202.PutRecords') {
      reply(
        res,
        400,
        JSON.stringify({
          __type: 'UnknownOperationException',
          message: `the stand-in serves PutRecords only: ${target}`,
        }),
      );
      return;
    }
    const body = Buffer.concat(chunks);
    const count = countEntries(body);
    entries += count;
    inFlight++;
    maxCallsInFlight = Math.max(maxCallsInFlight, inFlight);

    let status = 200;
    let out: string;
    let verdicts: Uint8Array | undefined;
    if (o.failCallShare > 0 && draw() < o.failCallShare) {
      failedCalls++;
      status = 500;
      out = JSON.stringify({ __type: 'InternalFailure', message: 'Internal Service Failure' });
    } else {
      // Entries are written (and their order fixed) when the call arrives, as a shard does; only the answer waits.
      verdicts = new Uint8Array(count);
      const parts: string[] = new Array(count);
      let failed = 0;
      let throttledEntry: string | undefined;
      for (let i = 0; i < count; i++) {
        if (o.throttleShare > 0 && draw() < o.throttleShare) {
          failed++;
          verdicts[i] = 1;
          throttledEntry ??=
            '{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000000 in stream ' +
            `${streamNameOf(body)} under account 000000000000."}`;
          parts[i] = throttledEntry;
          continue;
        }
        parts[i] = `{"SequenceNumber":"${++sequence}","ShardId":"shardId-000000000000"}`;
      }
      throttled += failed;
      written += count - failed;
      out = `{"FailedRecordCount":${failed},"Records":[${parts.join(',')}]}`;
    }
    const call: Call = { body, arrived: ++clock, answered: Number.POSITIVE_INFINITY, throttled: verdicts };
    log.push(call);
    await new Promise((r) => setTimeout(r, o.delayMs));
    inFlight--;
    call.answered = ++clock;
    reply(res, status, out);
  };

  /** Each call's partition keys, parsed after the run. */
  const parsed = new Map<Call, PutRecordsBody>();
  const parse = (c: Call): PutRecordsBody => {
    let b = parsed.get(c);
    if (!b) {
      b = JSON.parse(c.body.toString('utf8')) as PutRecordsBody;
      parsed.set(c, b);
    }
    return b;
  };
  /** Calls that arrived while another call holding one of their partition keys was unanswered, replayed in order. */
  const overlaps = (): number => {
    const events: { at: number; call: Call; arrive: boolean }[] = [];
    for (const call of log) {
      events.push({ at: call.arrived, call, arrive: true });
      if (Number.isFinite(call.answered)) events.push({ at: call.answered, call, arrive: false });
    }
    events.sort((x, y) => x.at - y.at);
    const keysInFlight = new Map<string, number>();
    let n = 0;
    for (const e of events) {
      const keys = new Set((parse(e.call).Records ?? []).map((r) => r.PartitionKey ?? ''));
      let overlapped = false;
      for (const k of keys) {
        const held = keysInFlight.get(k) ?? 0;
        if (e.arrive && held > 0) overlapped = true;
        const next = held + (e.arrive ? 1 : -1);
        if (next === 0) keysInFlight.delete(k);
        else keysInFlight.set(k, next);
      }
      if (overlapped) n++;
    }
    return n;
  };
  const deliveries = (): Delivery[] => {
    const out: Delivery[] = [];
    for (const call of log) {
      if (!call.throttled) continue;
      const records = parse(call).Records ?? [];
      records.forEach((r, i) => {
        if (!call.throttled![i]) out.push({ partitionKey: r.PartitionKey ?? '', position: positionOf(r.Data ?? '') });
      });
    }
    return out;
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) =>
      reply(res, 400, JSON.stringify({ __type: 'SerializationException', message: e.message })),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    deliveries: async () => deliveries(),
    stats: async () => ({
      calls: log.length,
      entries,
      written,
      throttled,
      failedCalls,
      maxCallsInFlight,
      sameKeyOverlaps: overlaps(),
    }),
    reset: async () => {
      if (inFlight > 0) throw new Error('the latency Kinesis stand-in cannot reset with calls in flight');
      log = [];
      parsed.clear();
      entries = 0;
      written = 0;
      throttled = 0;
      failedCalls = 0;
      maxCallsInFlight = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

type Request = { id: number; op: 'deliveries' | 'stats' | 'reset' | 'close' };
type Answer = { id: number; value: unknown };

/**
 * The stand-in on a worker thread (this module, loaded again there). Deliveries cross back as two arrays when asked
 * for; the worker holds them until then.
 */
export async function startLatencyKinesisInWorker(options: LatencyKinesisOptions = {}): Promise<LatencyKinesis> {
  validate(options);
  // This module is TypeScript, and Node 20 does not apply tsx's loader hooks inside a worker (neither inherited nor
  // from the worker's own --import): the worker's entry imports it through tsx's API instead.
  const tsxApi = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const entry =
    `import(${JSON.stringify(tsxApi)}).then(({ tsImport }) => tsImport(${JSON.stringify(import.meta.url)}, ` +
    `${JSON.stringify(import.meta.url)})).catch((e) => { console.error(e); process.exit(1); });`;
  const worker = new Worker(entry, { eval: true, workerData: { latencyKinesis: options } });
  const endpoint = await new Promise<string>((resolve, reject) => {
    worker.once('message', (m: { endpoint: string }) => resolve(m.endpoint));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the latency Kinesis stand-in's worker exited (code ${code})`)));
  });
  let next = 0;
  const ask = <T>(op: Request['op']): Promise<T> =>
    new Promise((resolve) => {
      const id = ++next;
      const on = (m: Answer) => {
        if (m.id !== id) return;
        worker.off('message', on);
        resolve(m.value as T);
      };
      worker.on('message', on);
      worker.postMessage({ id, op } satisfies Request);
    });
  return {
    endpoint,
    deliveries: async () => {
      const { keys, positions } = await ask<{ keys: string[]; positions: string[] }>('deliveries');
      return keys.map((partitionKey, i) => ({ partitionKey, position: positions[i]! }));
    },
    stats: () => ask<LatencyKinesisStats>('stats'),
    reset: () => ask<void>('reset'),
    close: async () => {
      await ask('close');
      await worker.terminate();
    },
  };
}

if (!isMainThread && parentPort && (workerData as { latencyKinesis?: LatencyKinesisOptions })?.latencyKinesis) {
  const port = parentPort;
  const kinesis = await startLatencyKinesis((workerData as { latencyKinesis: LatencyKinesisOptions }).latencyKinesis);
  port.on('message', async ({ id, op }: Request) => {
    if (op === 'deliveries') {
      const ds = await kinesis.deliveries();
      port.postMessage({
        id,
        value: { keys: ds.map((d) => d.partitionKey), positions: ds.map((d) => d.position) },
      } satisfies Answer);
    } else if (op === 'stats') port.postMessage({ id, value: await kinesis.stats() } satisfies Answer);
    else if (op === 'reset') {
      await kinesis.reset();
      port.postMessage({ id, value: null } satisfies Answer);
    } else {
      await kinesis.close();
      port.postMessage({ id, value: null } satisfies Answer);
    }
  });
  port.postMessage({ endpoint: kinesis.endpoint });
}

/** What the per-key order check found. */
export interface OrderReport {
  readonly partitionKeys: number;
  /** Distinct records (partition key, position) delivered at least once. */
  readonly records: number;
  readonly deliveries: number;
  /** Deliveries of a record already delivered (resends after a partial failure). */
  readonly repeats: number;
  readonly violations: number;
  /** The first few violations, for the error message. */
  readonly examples: readonly { partitionKey: string; position: string; before: string }[];
}

/**
 * Per partition key, each record's LAST delivery must come in position order: a resend after a partial failure may
 * repeat records (duplicates carry the same position, and the merge keeps the last), but a record must never be last
 * delivered after a record that follows it. Walks the deliveries backwards once: the first time a record is seen
 * from the end is its last delivery, and those must descend.
 */
export function checkPerKeyOrder(deliveries: readonly Delivery[]): OrderReport {
  const perKey = new Map<string, { seen: Set<string>; next: string | undefined }>();
  let records = 0;
  let violations = 0;
  const examples: { partitionKey: string; position: string; before: string }[] = [];
  for (let i = deliveries.length - 1; i >= 0; i--) {
    const { partitionKey, position } = deliveries[i]!;
    let k = perKey.get(partitionKey);
    if (!k) {
      k = { seen: new Set(), next: undefined };
      perKey.set(partitionKey, k);
    }
    if (k.seen.has(position)) continue;
    k.seen.add(position);
    records++;
    if (k.next !== undefined && !(position < k.next)) {
      violations++;
      if (examples.length < 5) examples.push({ partitionKey, position, before: k.next });
    }
    k.next = position;
  }
  return {
    partitionKeys: perKey.size,
    records,
    deliveries: deliveries.length,
    repeats: deliveries.length - records,
    violations,
    examples,
  };
}
