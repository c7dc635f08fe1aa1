import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Figures, recordFigures } from '../../bench/figures';
import {
  appendHistory,
  entriesFor,
  type HistoryEntry,
  mergeSeed,
  type ResultsRevision,
  readHistory,
  seedEntries,
} from '../../bench/history';
import {
  BenchChartError,
  CHARTS_DIR,
  chartsFor,
  groupOf,
  historyChart,
  latestChart,
  measureOf,
  parseTarget,
  renderSvg,
  writeCharts,
} from '../../bench/plots';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bench-plots-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const machine = { node: 'v20.20.2', cpus: 2, cpu: 'AMD EPYC' };

const results = (updated: string, figures: Figures): string => JSON.stringify({ updated, machine, figures });

const producerA: Figures = {
  producer_vs_raw_putrecords: { value: 4638, unit: 'rows/s', reference: 8313, ratio: 0.56, target: '≥ 0.8' },
  producer_peak_rss_mb_1m_row_txn: { value: 224, unit: 'MB', target: '≤ 256' },
};
const merge: Figures = {
  merge_vs_copy: { value: 58514, unit: 'rows/s', reference: 508923, ratio: 0.11, target: '≥ 0.3' },
};

/** Three commits of latest.json: producer and merge measured, then only snapshot added, then the producer again. */
const revisions: ResultsRevision[] = [
  { commit: 'aaaaaaa', text: results('2026-11-23T07:30:00.000Z', { ...producerA, ...merge }) },
  {
    commit: 'bbbbbbb',
    text: results('2026-11-23T09:52:00.000Z', {
      ...producerA,
      ...merge,
      snapshot_vs_mariadb_dump: { value: 173133, unit: 'rows/s', reference: 2506671, ratio: 0.07, target: '≥ 0.5' },
    }),
  },
  {
    commit: 'ccccccc',
    text: results('2026-11-30T19:05:00.000Z', {
      ...producerA,
      producer_vs_raw_putrecords: { value: 8870, unit: 'rows/s', reference: 12656, ratio: 0.7, target: '≥ 0.8' },
      ...merge,
    }),
  },
];

describe('the benchmark history', () => {
  it('appends exactly one line per figure of a run to history.jsonl, stamped like latest.json, and keeps the lines before', () => {
    const history = join(dir, 'history.jsonl');
    const latest = join(dir, 'latest.json');
    writeFileSync(history, `${JSON.stringify({ figure: 'earlier', value: 1 })}\n`);
    recordFigures(producerA, latest, {
      file: history,
      revision: { commit: '1234abc', dirty: true },
      time: new Date('2026-12-01T00:00:00.000Z'),
    });

    const lines = readHistory(history);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toEqual({ figure: 'earlier', value: 1 });
    expect(lines.slice(1)).toEqual([
      expect.objectContaining({
        time: '2026-12-01T00:00:00.000Z',
        commit: '1234abc',
        dirty: true,
        figure: 'producer_vs_raw_putrecords',
        value: 4638,
        unit: 'rows/s',
        reference: 8313,
        ratio: 0.56,
        target: '≥ 0.8',
      }),
      expect.objectContaining({ figure: 'producer_peak_rss_mb_1m_row_txn', value: 224, target: '≤ 256' }),
    ]);
    expect(lines[2]).not.toHaveProperty('ratio');
    expect(lines[1]!.machine).toEqual(expect.objectContaining({ node: process.version }));
    expect(JSON.parse(readFileSync(latest, 'utf8')).updated).toBe('2026-12-01T00:00:00.000Z');
  });

  it('seeds from the versions of latest.json only the figures that changed from the version before', () => {
    const seed = seedEntries(revisions);
    expect(seed.map((e) => [e.commit, e.figure, e.time])).toEqual([
      ['aaaaaaa', 'producer_vs_raw_putrecords', '2026-11-23T07:30:00.000Z'],
      ['aaaaaaa', 'producer_peak_rss_mb_1m_row_txn', '2026-11-23T07:30:00.000Z'],
      ['aaaaaaa', 'merge_vs_copy', '2026-11-23T07:30:00.000Z'],
      ['bbbbbbb', 'snapshot_vs_mariadb_dump', '2026-11-23T09:52:00.000Z'],
      ['ccccccc', 'producer_vs_raw_putrecords', '2026-11-30T19:05:00.000Z'],
    ]);
    expect(seed.every((e) => e.seeded === true && e.dirty === false)).toBe(true);
    expect(seed[4]).toEqual(expect.objectContaining({ value: 8870, reference: 12656, ratio: 0.7 }));
  });

  it('re-seeding adds nothing and leaves the file byte for byte, and a run already holding a seeded measurement is not doubled', () => {
    const history = join(dir, 'history.jsonl');
    // A run recorded on ccccccc's parent before the seed existed: the same numbers ccccccc's latest.json holds.
    appendHistory(
      entriesFor(
        { producer_vs_raw_putrecords: JSON.parse(revisions[2]!.text).figures.producer_vs_raw_putrecords },
        '2026-11-30T19:04:00.000Z',
        { commit: 'bbbbbbb', dirty: true },
        machine,
      ),
      history,
    );
    expect(mergeSeed(seedEntries(revisions), history)).toBe(4);
    const once = readFileSync(history, 'utf8');
    expect(mergeSeed(seedEntries(revisions), history)).toBe(0);
    expect(readFileSync(history, 'utf8')).toBe(once);

    const lines = readHistory(history);
    expect(lines).toHaveLength(5);
    expect(lines.map((e) => e.time)).toEqual([...lines.map((e) => e.time)].sort());
    expect(lines.filter((e) => e.figure === 'producer_vs_raw_putrecords').map((e) => [e.commit, e.seeded])).toEqual([
      ['aaaaaaa', true],
      ['bbbbbbb', undefined],
    ]);
  });

  it('names the file and line of a history line that is not JSON', () => {
    const history = join(dir, 'history.jsonl');
    writeFileSync(history, '{"figure":"a","value":1}\nnot json\n');
    expect(() => readHistory(history)).toThrow(/history\.jsonl line 2 is not JSON: "not json"/);
  });
});

describe('what a chart plots for a figure', () => {
  it('reads targets with and without a unit, with thousands separators and ×', () => {
    expect(parseTarget('f', '≥ 40,000 rows/s')).toEqual({ op: '≥', bound: 40000, unit: 'rows/s' });
    expect(parseTarget('f', '≤ 1.5 s')).toEqual({ op: '≤', bound: 1.5, unit: 's' });
    expect(parseTarget('f', '≥ 5×')).toEqual({ op: '≥', bound: 5, unit: '' });
    expect(parseTarget('f', '>= 0.9')).toEqual({ op: '≥', bound: 0.9, unit: '' });
  });

  it('rejects a target it cannot read, naming the figure and the value', () => {
    const err = (() => {
      try {
        parseTarget('merge_vs_copy', 'about a third');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(BenchChartError);
    expect(err).toMatchObject({
      code: 'BENCH_TARGET_UNPARSEABLE',
      message: 'figure merge_vs_copy: target "about a third" is not "≥ N [unit]" or "≤ N [unit]"',
    });
  });

  it('plots the ratio for a unitless target, the value for a target with a unit or without a reference, and skips context figures', () => {
    expect(measureOf('a', { value: 4638, unit: 'rows/s', ratio: 0.56, target: '≥ 0.8' })).toMatchObject({
      kind: 'ratio',
      measure: 0.56,
    });
    expect(measureOf('b', { value: 0.63, unit: 's', ratio: 0.44, target: '≤ 1.5 s' })).toMatchObject({
      kind: 'value',
      measure: 0.63,
    });
    expect(measureOf('c', { value: 224, unit: 'MB', target: '≤ 256' })).toMatchObject({ kind: 'value', measure: 224 });
    expect(measureOf('d', { value: 12.41, unit: 'batches/s', ratio: 1.38 })).toMatchObject({ kind: 'ratio' });
    expect(measureOf('e', { value: 58777, unit: 'rows/s' })).toBeUndefined();
  });

  it('takes a ratio from the value and the reference, so a miss recorded rounded onto its target stays a miss', () => {
    const f = { value: 102_931, unit: 'rows/s', reference: 114_557, ratio: 0.9, target: '≥ 0.9' };
    expect(measureOf('producer_vs_raw_putrecords', f)!.measure).toBeCloseTo(0.8985, 4);
    expect(latestChart('producer', [['producer_vs_raw_putrecords', f]])!.description).toBe(
      'producer_vs_raw_putrecords 0.899× (target ≥ 0.9×: missed)',
    );
  });

  it('groups figures by the longest benchmark name they start with', () => {
    const benches = ['freshness', 'merge', 'producer', 'stream-apply'];
    expect(groupOf('stream_apply_20_tables_batches_per_s', benches)).toBe('stream-apply');
    expect(groupOf('producer_vs_raw_putrecords', benches)).toBe('producer');
    expect(groupOf('snapshot_vs_mariadb_dump', benches)).toBe('snapshot');
  });
});

/** The `<path>` elements of one kind of mark (Vega labels each item with its role). */
const marks = (svg: string, role: string) => svg.match(new RegExp(`aria-roledescription="${role}"`, 'g'))?.length ?? 0;

describe('the charts', () => {
  const history = (): HistoryEntry[] => seedEntries(revisions);

  it('draws the history of a group with its title and description, one point per run and the target as a rule', async () => {
    const chart = historyChart(
      'producer',
      history().filter((e) => e.figure.startsWith('producer')),
    )!;
    const svg = await renderSvg(chart);

    expect(svg).toMatch(/^<svg role="img" aria-labelledby="history-producer-title history-producer-desc" /);
    expect(svg).toContain('<title id="history-producer-title">producer: figures over time</title>');
    expect(svg).toContain(
      '<desc id="history-producer-desc">producer: figures over time, 2026-11-23 to 2026-11-30: ' +
        'producer_peak_rss_mb_1m_row_txn 1 run, 224 MB (target ≤ 256 MB); ' +
        'producer_vs_raw_putrecords 2 runs, 0.558× → 0.701× (target ≥ 0.8×)</desc>',
    );
    // Three runs in all: 224 MB once, the raw PutRecords ratio twice.
    expect(marks(svg, 'point')).toBe(3);
    expect(svg).toContain('aria-label="producer_vs_raw_putrecords 0.701×, run of 2026-11-30 19:05 UTC on ccccccc"');
    // One dashed target rule per panel, at the target.
    expect(marks(svg, 'rule mark container')).toBe(2);
    expect(svg.match(/stroke-dasharray="5,4"/g)).toHaveLength(2);
    expect(svg).toContain("Y-axis titled 'ratio (×)'");
    expect(svg).toContain("Y-axis titled 'MB'");
    expect(svg).toContain("X-axis titled 'run (UTC)'");
  });

  it('draws the latest figures of a group as one bar each with a tick at each target, met or missed in the text', async () => {
    const chart = latestChart('freshness', [
      ['freshness_p50_s', { value: 0.63, unit: 's', reference: 1.43, ratio: 0.44, target: '≤ 1.5 s' }],
      ['freshness_p99_s', { value: 3.1, unit: 's', reference: 2.35, ratio: 1.32, target: '≤ 3 s' }],
      ['freshness_stream_prod_window_p50_s', { value: 2.32, unit: 's', reference: 1.43, ratio: 1.63 }],
      ['freshness_lake_p50_s', { value: 1.43, unit: 's' }],
    ])!;
    const svg = await renderSvg(chart);
    expect(svg).toContain('<title id="latest-freshness-title">freshness: latest figures against their targets</title>');
    expect(chart.description).toBe(
      'freshness_p50_s 0.63 s (target ≤ 1.5 s: met); freshness_p99_s 3.1 s (target ≤ 3 s: missed); ' +
        'freshness_stream_prod_window_p50_s 1.622×',
    );
    expect(marks(svg, 'bar')).toBe(3);
    expect(marks(svg, 'tick')).toBe(2);
    expect(svg).toContain('fill="#1f4e79"'); // met
    expect(svg).toContain('fill="#a04500"'); // missed
  });

  it('renders the same bytes for the same input, whatever was rendered before', async () => {
    const charts = chartsFor(JSON.parse(revisions[2]!.text).figures, history(), [
      'freshness',
      'merge',
      'producer',
      'snapshot',
      'stream-apply',
    ]);
    expect(charts.map((c) => c.file)).toEqual([
      'latest-merge.svg',
      'history-merge.svg',
      'latest-producer.svg',
      'history-producer.svg',
      'history-snapshot.svg',
    ]);
    // Two kinds of chart, each rendered again after the other (Vega keeps module-level counters between renders).
    const two = [charts[0]!, charts[3]!];
    const first = [await renderSvg(two[0]!), await renderSvg(two[1]!)];
    const again = [await renderSvg(two[1]!), await renderSvg(two[0]!)].reverse();
    expect(again).toEqual(first);

    const out = join(dir, 'charts');
    await writeCharts([], out);
    writeFileSync(join(out, 'history-gone.svg'), '<svg/>');
    writeFileSync(join(out, 'kept.svg'), '<svg/>');
    await writeCharts(two, out);
    expect(readdirSync(out).sort()).toEqual(['history-producer.svg', 'kept.svg', 'latest-merge.svg']);
    expect(readFileSync(join(out, 'history-producer.svg'), 'utf8')).toBe(first[1]);
  });

  it('are each shown by docs/benchmarks.md', () => {
    const doc = readFileSync(join(CHARTS_DIR, '..', 'benchmarks.md'), 'utf8');
    const files = readdirSync(CHARTS_DIR).filter((f) => f.endsWith('.svg'));
    expect(files.length).toBeGreaterThan(0);
    expect(files.filter((f) => !doc.includes(`](benchmarks/${f})`))).toEqual([]);
  });
});
