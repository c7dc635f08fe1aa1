/**
 * Would record aggregation pay (issue 14: "optional record aggregation if it measurably helps")? The same change
 * events written to the latency Kinesis stand-in (bench/support/latency-kinesis.ts, 30 ms a call, 8 calls in flight,
 * on a worker thread) three ways, alternated three times, the median of each kept:
 * - one event per Kinesis record, 500 records a call: what the producer writes (the reference);
 * - KPL aggregated records of up to 50 KB (the KPL's default `AggregationMaxSize`, 51200: its
 *   default_config.properties), built by awslabs' `aws-kinesis-agg`;
 * - the same records built by the cheapest encoder of the format (bench/support/kpl-aggregate.ts).
 * Each aggregated call carries up to 500 records and 5 MiB (the PutRecords limits:
 * https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html). The figures are the sender's
 * main-thread CPU per row (building the records and the SDK's work: base64, JSON, SigV4, HTTP) as rows per CPU second,
 * higher is better, and,
 * for the consumer, what a Lambda pays per event to get its events back (base64 → JSON per record, or
 * `deaggregateSync` then the same). The stand-in answers a 5 MiB call as fast as a 350 KB one, where AWS would not,
 * so its wall-clock rows/s is printed, not recorded. What Kinesis itself would gain (records per shard) follows from
 * the events' size and the service's limits: docs/benchmarks.md, "Record aggregation".
 *
 * The events: 200,000 (50,000 with --quick) insert events of the producer benchmark's 6-column table, in the
 * producer's format with its `table-pk` partition keys (one key per row), built here without a binlog.
 */
import { createRequire } from 'node:module';
import { PutRecordsCommand, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { DEFAULT_CALLS_IN_FLIGHT, MAX_RECORDS_PER_CALL, sinkClient } from '../containers/producer/src/kinesis-sink';
import type { Figures } from './figures';
import { kplAggregate } from './support/kpl-aggregate';
import { startLatencyKinesisInWorker } from './support/latency-kinesis';
import { mainThreadCpuS } from './support/thread-cpu';

const AGGREGATE_BYTES = 51_200;
const CALL_BYTES = 5 * 1024 * 1024;

const agg = createRequire(import.meta.url)('aws-kinesis-agg') as {
  RecordAggregator: new () => {
    addUserRecord(r: { partitionKey: string; data: Uint8Array }): void;
    build(): { partitionKey: string; data: Buffer };
    length(): number;
  };
  deaggregateSync(
    record: { partitionKey: string; sequenceNumber: string; data: string },
    computeChecksums: boolean,
    done: (err: Error | null, records?: { data: string }[]) => void,
  ): void;
};

interface UserRecord {
  readonly partitionKey: string;
  readonly data: Buffer;
}

function events(rows: number): UserRecord[] {
  const columns =
    '[{"name":"id","type":"bigint(20)"},{"name":"customer_id","type":"int(11)"},' +
    `{"name":"status","type":"enum('new','paid','shipped')"},{"name":"total","type":"decimal(12,2)"},` +
    '{"name":"created_at","type":"datetime(6)"},{"name":"note","type":"varchar(200)"}]';
  return Array.from({ length: rows }, (_, i) => {
    const id = 1_000_000 + i;
    const pos = 4 + i * 300;
    const tx = `0-1-${Math.floor(i / 1000)}`;
    const after =
      `{"id":"${id}","customer_id":${i % 5000},"status":"paid","total":"${i % 100_000}.${String(i % 100).padStart(2, '0')}",` +
      `"created_at":"2026-12-01 10:${String(i % 60).padStart(2, '0')}:00.${String(i).padStart(6, '0')}",` +
      `"note":"note for order ${i} with some text"}`;
    const data =
      `{"v":2,"op":"insert","db":"bench","table":"orders","pk":["id"],"columns":${columns},"before":null,` +
      `"after":${after},"source":{"server_id":1,"file":"mysql-bin.000001","pos":${pos},"row":${i % 1000},"gtid":"${tx}"},` +
      `"position":"000001.${String(pos).padStart(12, '0')}.${String(i % 1000).padStart(8, '0')}","tx":"${tx}",` +
      `"ts_ms":${1_795_412_400_000 + i},"emitted_ms":${1_795_412_400_050 + i}}\n`;
    return { partitionKey: `bench.orders.${id}`, data: Buffer.from(data) };
  });
}

/** Consecutive records grouped up to AGGREGATE_BYTES of data each (what a KPL-style aggregator does per shard). */
function groups(records: readonly UserRecord[]): UserRecord[][] {
  const out: UserRecord[][] = [];
  let group: UserRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = r.data.length + r.partitionKey.length + 8;
    if (bytes + size > AGGREGATE_BYTES && group.length > 0) {
      out.push(group);
      group = [];
      bytes = 0;
    }
    group.push(r);
    bytes += size;
  }
  if (group.length > 0) out.push(group);
  return out;
}

type Mode = 'single' | 'library' | 'hand';

function entriesOf(mode: Mode, records: readonly UserRecord[]): PutRecordsRequestEntry[] {
  if (mode === 'single') return records.map((r) => ({ PartitionKey: r.partitionKey, Data: r.data }));
  return groups(records).map((g) => {
    if (mode === 'hand') return { PartitionKey: g[0]!.partitionKey, Data: kplAggregate(g) };
    const a = new agg.RecordAggregator();
    for (const r of g) a.addUserRecord(r);
    const built = a.build();
    return { PartitionKey: built.partitionKey, Data: built.data };
  });
}

interface SendRun {
  readonly cpuS: number;
  readonly seconds: number;
  readonly records: number;
  readonly calls: number;
  readonly bytes: number;
}

/** Builds the mode's Kinesis records from `records` and sends them, 8 calls in flight: main-thread CPU and time. */
async function send(mode: Mode, records: readonly UserRecord[]): Promise<SendRun> {
  const standIn = await startLatencyKinesisInWorker({ delayMs: 30 });
  try {
    const client = sinkClient(standIn.endpoint);
    const cpu0 = mainThreadCpuS();
    const started = performance.now();
    const entries = entriesOf(mode, records);
    let next = 0;
    const lane = async (): Promise<void> => {
      for (;;) {
        const batch: PutRecordsRequestEntry[] = [];
        let bytes = 0;
        while (batch.length < MAX_RECORDS_PER_CALL && next < entries.length) {
          const e = entries[next]!;
          const size = e.Data!.length + e.PartitionKey!.length;
          if (bytes + size > CALL_BYTES) break;
          bytes += size;
          batch.push(e);
          next++;
        }
        if (batch.length === 0) return;
        const res = await client.send(new PutRecordsCommand({ StreamName: 'aggregation', Records: batch }));
        if (res.FailedRecordCount) throw new Error(`${res.FailedRecordCount} records failed with no throttling set`);
      }
    };
    await Promise.all(Array.from({ length: DEFAULT_CALLS_IN_FLIGHT }, lane));
    const seconds = (performance.now() - started) / 1000;
    const cpuS = mainThreadCpuS() - cpu0;
    const stats = await standIn.stats();
    if (stats.entries !== entries.length) throw new Error(`the stand-in got ${stats.entries} of ${entries.length}`);
    const bytes = entries.reduce((s, e) => s + e.Data!.length, 0);
    return { cpuS, seconds, records: entries.length, calls: stats.calls, bytes };
  } finally {
    await standIn.close();
  }
}

/** What a consumer pays per event: the Lambda's base64 → UTF-8 → JSON.parse, after `deaggregateSync` if aggregated. */
function consume(mode: 'single' | 'library', entries: readonly PutRecordsRequestEntry[]): number {
  const payloads = entries.map((e) => Buffer.from(e.Data!).toString('base64')); // as the event source mapping delivers
  const cpu0 = mainThreadCpuS();
  let n = 0;
  for (const data of payloads) {
    if (mode === 'single') {
      JSON.parse(Buffer.from(data, 'base64').toString('utf8'));
      n++;
      continue;
    }
    agg.deaggregateSync({ partitionKey: 'p', sequenceNumber: '1', data }, true, (err, rs) => {
      if (err) throw err;
      for (const r of rs!) {
        JSON.parse(Buffer.from(r.data, 'base64').toString('utf8'));
        n++;
      }
    });
  }
  return (mainThreadCpuS() - cpu0) / n;
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function step(what: string): void {
  process.stderr.write(`  ${new Date().toISOString().slice(11, 19)} ${what}\n`);
}

export async function run({ quick }: { quick: boolean }): Promise<Figures> {
  const rows = quick ? 50_000 : 200_000;
  const records = events(rows);
  const eventBytes = records.reduce((s, r) => s + r.data.length, 0) / rows;
  step(`${rows} events of ${eventBytes.toFixed(0)} bytes on average`);
  await send('single', records.slice(0, 20_000)); // the SDK and the stand-in compiled before anything is timed
  await send('hand', records.slice(0, 20_000));
  await send('library', records.slice(0, 20_000));
  const runs: Record<Mode, SendRun[]> = { single: [], library: [], hand: [] };
  for (let round = 1; round <= 3; round++) {
    for (const mode of ['single', 'library', 'hand'] as const) {
      const r = await send(mode, records);
      runs[mode].push(r);
      step(
        `round ${round} ${mode}: ${r.records} records in ${r.calls} calls, main thread ${r.cpuS.toFixed(2)} s CPU ` +
          `(${((r.cpuS / rows) * 1e6).toFixed(1)} µs a row), ${Math.round(rows / r.seconds)} rows/s at 30 ms`,
      );
    }
  }
  const perCpuS = (mode: Mode) => Math.round(rows / median(runs[mode].map((r) => r.cpuS)));
  const consumer = { single: [] as number[], library: [] as number[] };
  const singleEntries = entriesOf('single', records);
  const aggregated = entriesOf('library', records);
  for (let round = 0; round < 3; round++) {
    consumer.single.push(consume('single', singleEntries));
    consumer.library.push(consume('library', aggregated));
  }
  const consumerPerCpuS = (mode: 'single' | 'library') => Math.round(1 / median(consumer[mode]));
  const single = perCpuS('single');
  const eventsPerRecord = rows / aggregated.length;
  const notes =
    `${rows} events of ${eventBytes.toFixed(0)} bytes, 30 ms a call, 8 calls in flight; aggregated records of up to ` +
    `${AGGREGATE_BYTES} bytes hold ${eventsPerRecord.toFixed(1)} events; median of 3 alternated runs; main-thread CPU`;
  const figure = (value: number, reference: number, referenceName: string, note: string) => ({
    value,
    unit: 'rows per CPU second',
    reference,
    referenceName,
    ratio: Math.round((value / reference) * 100) / 100,
    notes: `${note}; ${notes}`,
  });
  return {
    kinesis_aggregation_sender_rows_per_cpu_s: figure(
      perCpuS('library'),
      single,
      'one event per Kinesis record',
      'KPL aggregated records built by aws-kinesis-agg, then PutRecords',
    ),
    kinesis_aggregation_hand_sender_rows_per_cpu_s: figure(
      perCpuS('hand'),
      single,
      'one event per Kinesis record',
      'KPL aggregated records built by the cheapest encoder (bench/support/kpl-aggregate.ts), then PutRecords',
    ),
    kinesis_aggregation_consumer_events_per_cpu_s: {
      ...figure(
        consumerPerCpuS('library'),
        consumerPerCpuS('single'),
        'one event per Kinesis record: base64, UTF-8, JSON.parse',
        'deaggregateSync (checksums verified), then base64, UTF-8, JSON.parse per event',
      ),
      unit: 'events per CPU second',
    },
  };
}
