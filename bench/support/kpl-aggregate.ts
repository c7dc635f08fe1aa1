/**
 * The Kinesis Producer Library's aggregated record, written by hand, for the aggregation benchmark only
 * (bench/kinesis-aggregation.bench.ts): what the cheapest encoder of that format costs, beside the awslabs library
 * `aws-kinesis-agg` (protobufjs) the benchmark also measures. The producer does not aggregate (docs/benchmarks.md,
 * "Record aggregation").
 *
 * The format (the KPL's aggregation format, which Firehose and the awslabs de-aggregation modules read): the 4 magic
 * bytes F3 89 9A C2, then a protobuf `AggregatedRecord` { repeated string partition_key_table = 1; repeated Record
 * records = 3 }, each `Record` { uint64 partition_key_index = 1; bytes data = 3 }, then the MD5 digest of the
 * protobuf bytes. test/bench/kpl-aggregate.test.ts reads what this writes back with `aws-kinesis-agg`.
 */
import { createHash } from 'node:crypto';

const MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);
const MD5_BYTES = 16;

function varintLength(v: number): number {
  let n = 1;
  while (v > 127) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(out: Buffer, at: number, v: number): number {
  while (v > 127) {
    out[at++] = (v & 127) | 128;
    v = Math.floor(v / 128);
  }
  out[at++] = v;
  return at;
}

/** One aggregated record of `records` (each with its own partition key, kept in the record for its consumer). */
export function kplAggregate(records: readonly { readonly partitionKey: string; readonly data: Uint8Array }[]): Buffer {
  const keyIndex = new Map<string, number>();
  const keys: Buffer[] = [];
  const recordLengths: number[] = [];
  let size = 0;
  for (const r of records) {
    let index = keyIndex.get(r.partitionKey);
    if (index === undefined) {
      index = keys.length;
      keyIndex.set(r.partitionKey, index);
      const k = Buffer.from(r.partitionKey);
      keys.push(k);
      size += 1 + varintLength(k.length) + k.length;
    }
    const n = 1 + varintLength(index) + 1 + varintLength(r.data.length) + r.data.length;
    recordLengths.push(n);
    size += 1 + varintLength(n) + n;
  }
  const out = Buffer.allocUnsafe(MAGIC.length + size + MD5_BYTES);
  let at = MAGIC.copy(out, 0);
  for (const k of keys) {
    out[at++] = 0x0a; // field 1, length-delimited
    at = writeVarint(out, at, k.length);
    at += k.copy(out, at);
  }
  records.forEach((r, i) => {
    out[at++] = 0x1a; // field 3, length-delimited
    at = writeVarint(out, at, recordLengths[i]!);
    out[at++] = 0x08; // Record field 1, varint
    at = writeVarint(out, at, keyIndex.get(r.partitionKey)!);
    out[at++] = 0x1a; // Record field 3, length-delimited
    at = writeVarint(out, at, r.data.length);
    out.set(r.data, at);
    at += r.data.length;
  });
  createHash('md5').update(out.subarray(MAGIC.length, at)).digest().copy(out, at);
  return out;
}
