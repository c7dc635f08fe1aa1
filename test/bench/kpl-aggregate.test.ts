import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { kplAggregate } from '../../bench/support/kpl-aggregate';

/** awslabs' de-aggregation module, as a Lambda consumer of KPL records would use it. */
const deagg = createRequire(import.meta.url)('aws-kinesis-agg') as {
  deaggregateSync(
    record: { partitionKey: string; sequenceNumber: string; data: string },
    computeChecksums: boolean,
    done: (err: Error | null, records?: { partitionKey: string; data: string }[]) => void,
  ): void;
};

function readBack(data: Buffer): { partitionKey: string; data: string }[] {
  let out: { partitionKey: string; data: string }[] | undefined;
  deagg.deaggregateSync(
    { partitionKey: 'outer', sequenceNumber: '1', data: data.toString('base64') },
    true,
    (err, r) => {
      if (err) throw err;
      out = r;
    },
  );
  return out!.map((r) => ({ partitionKey: r.partitionKey, data: Buffer.from(r.data, 'base64').toString('utf8') }));
}

describe('the hand-written KPL aggregated record (bench only)', () => {
  it('is read back by aws-kinesis-agg, checksum verified, each record with its own partition key and bytes', () => {
    const records = Array.from({ length: 300 }, (_, i) => ({
      // repeated keys share one table entry; a 300-byte record needs a two-byte length
      partitionKey: `shop.orders.${i % 7}`,
      data: `{"id":${i},"note":"${'é'.repeat(i % 150)}"}\n`,
    }));
    const back = readBack(kplAggregate(records.map((r) => ({ ...r, data: Buffer.from(r.data) }))));
    expect(back).toEqual(records);
  });

  it('fails the checksum when a byte of the data changes', () => {
    const agg = kplAggregate([{ partitionKey: 'k', data: Buffer.from('{"id":1}') }]);
    agg[agg.length - 20] ^= 1;
    expect(() => readBack(agg)).toThrow(/checksum/i);
  });
});
