/**
 * The local dashboard's series come from the pipeline's own lines: the producer's EMF documents (written by its real
 * EmfMetrics) and the merging processes' JSON events, keyed by the CloudWatch metric each stands for.
 */
import { describe, expect, it } from 'vitest';
import { EmfMetrics } from '../../containers/producer/src/metrics';
import { BUCKET_MS, LocalMetrics, mergeBacklogAgeS, percentile } from '../../local/dashboard/local-metrics';
import { DASHBOARD_SECTIONS, type DashboardMetric } from '../../shared/dashboard-layout';
import { MergeMetric, ProducerMetric } from '../../shared/metrics';

const T0 = 1_700_000_000_000; // a bucket boundary
const metric = (sectionId: string, name: string, label?: string): DashboardMetric => {
  const found = DASHBOARD_SECTIONS.find((s) => s.id === sectionId)?.metrics.find(
    (m) => m.name === name && (label === undefined || m.label === label),
  );
  if (!found) throw new Error(`no ${name} in ${sectionId}`);
  return found;
};
/** A line as local/merge-process.ts `say` writes it. */
const say = (event: string, at: number, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ event, at, ...fields });

describe('local dashboard metrics', () => {
  it("reads the producer's EMF documents: rows captured as rows/s, seconds behind as the bucket's maximum", () => {
    const m = new LocalMetrics();
    const lines: string[] = [];
    const emf = new EmfMetrics('local', undefined, (l) => lines.push(l));
    for (let i = 0; i < 2; i++) {
      emf.add(ProducerMetric.RowsCaptured, 'Count', 100);
      emf.add(ProducerMetric.PutThrottles, 'Count', 3);
      emf.gauge(ProducerMetric.SecondsBehindSource, 'Seconds', 4 - i);
      emf.flush(T0 + i * 1000);
    }
    for (const [i, l] of lines.entries()) m.ingest('producer', l, T0 + i * 1000);
    const rows = m.series(metric('producer-rows', ProducerMetric.RowsCaptured), T0, T0);
    expect(rows).toEqual({ t: [T0], v: [200 / (BUCKET_MS / 1000)] });
    expect(m.series(metric('producer-lag', ProducerMetric.SecondsBehindSource), T0, T0).v).toEqual([4]);
    // The producer's own count of throttled records is the stream's PutRecords.ThrottledRecords, locally.
    expect(m.series(metric('kinesis-records', 'PutRecords.ThrottledRecords'), T0, T0).v).toEqual([6 / 2]);
    expect(m.lastLineAt.get('producer')).toBe(T0 + 1000);
  });

  it('reads merged batches: rows applied, freshness percentiles and duration per path, gaps where nothing merged', () => {
    const m = new LocalMetrics();
    for (let i = 0; i < 10; i++)
      m.ingest(
        'stream-apply',
        say('applied', T0 + i * 100, { rows: 10, maxCommitMs: T0 + i * 100 - (i + 1) * 100, durationMs: 20 + i }),
        T0 + i * 100,
      );
    m.ingest('firehose', say('merged', T0 + 50, { key: 'k', rows: 7, maxCommitMs: T0 - 2000 }), T0 + 50);
    const to = T0 + BUCKET_MS;
    expect(m.series(metric('stream-apply-rows', MergeMetric.RowsApplied), T0, to).v).toEqual([50, 0]);
    expect(m.series(metric('merge-rows', MergeMetric.RowsApplied), T0, to).v).toEqual([3.5, 0]);
    const fresh = (label: string) =>
      m.series(metric('replica-freshness', MergeMetric.ReplicaFreshness, label), T0, to).v;
    expect(fresh('stream path p50')).toEqual([0.5, null]);
    expect(fresh('stream path p99')).toEqual([1, null]);
    expect(fresh('lake path p99')).toEqual([2.05, null]);
    expect(m.series(metric('stream-apply-duration', 'Duration'), T0, to).v).toEqual([29, null]);
  });

  it('keeps a poison batch and a batch out of retries with their reasons, and counts them apart', () => {
    const m = new LocalMetrics();
    m.ingest(
      'stream-apply',
      say('set-aside', T0, { table: 'shop.future', key: 'errors/merge/x', reason: 'event version 99', code: 'POISON' }),
      T0,
    );
    m.ingest(
      'stream-apply',
      say('set-aside', T0 + 1, {
        key: 'aws/lambda/y',
        reason: 'timeout',
        records: 4,
        condition: 'RetryAttemptsExhausted',
      }),
      T0 + 1,
    );
    m.ingest('stream-apply', 'not json', T0 + 2);
    expect(m.setAside).toEqual([
      {
        at: T0,
        part: 'stream-apply',
        kind: 'poison batch',
        table: 'shop.future',
        key: 'errors/merge/x',
        reason: 'event version 99',
      },
      {
        at: T0 + 1,
        part: 'stream-apply',
        kind: 'batch out of retries',
        table: null,
        key: 'aws/lambda/y',
        reason: 'timeout',
      },
    ]);
    expect(m.series(metric('stream-apply-rows', MergeMetric.PoisonBatches), T0, T0).v).toEqual([0.5]);
    expect(m.series(metric('stream-apply-age', 'OnFailureDestinationDeliveredEventCount'), T0, T0).v).toEqual([2]);
    expect(m.has(metric('firehose-s3', 'PartitionCount'))).toBe(false);
  });

  it('takes nearest-rank percentiles, as CloudWatch does', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([3, 1, 2], 50)).toBe(2);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        99,
      ),
    ).toBe(99);
    expect(percentile([5], 99)).toBe(5);
  });

  it('forgets history older than it keeps', () => {
    const m = new LocalMetrics(1000, 10_000);
    m.record('producer:RowsCaptured', 1, T0);
    m.prune(T0 + 20_000);
    expect(m.series(metric('producer-rows', ProducerMetric.RowsCaptured), T0, T0).v).toEqual([0]);
  });
});

describe('the local merge backlog age', () => {
  it('is the wait of the oldest queued object: since queued, or since its first failure once attempted', () => {
    const now = T0 + 60_000;
    expect(mergeBacklogAgeS([[], []], now)).toBe(0);
    expect(
      mergeBacklogAgeS(
        [
          [{ key: 'a', attempts: 0, nextAt: T0 + 50_000, lastError: '' }],
          [{ key: 'b', attempts: 2, nextAt: now + 5000, lastError: 'x', firstFailedAt: T0 + 30_000 }],
        ],
        now,
      ),
    ).toBe(30);
  });
});
