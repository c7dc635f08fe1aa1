/**
 * Charts of the benchmark figures, as SVG files in docs/benchmarks/ (shown by docs/benchmarks.md):
 * - `latest-<group>.svg`: per benchmark group, each figure's latest measure as a bar, its target as a tick;
 * - `history-<group>.svg`: per benchmark group, one panel per figure with every run of it over time (from
 *   bench/results/history.jsonl), its target as a dashed rule.
 *
 * The measure of a figure is the quantity its target is about: the ratio to the reference measured in the same run
 * when the target is unitless (`≥ 0.5`), so the machine's speed of the day cancels out; the value itself when the
 * target has a unit (`≤ 1.5 s`, `≤ 256 MB`, `≥ 40,000 rows/s`) or the figure has no reference. Figures with neither a
 * ratio nor a target (context such as `merge_rows_per_s`) are not charted.
 *
 * Vega-Lite specs compiled to Vega and rendered headless (`renderer: 'none'`, no DOM, canvas or native addon); text is
 * measured by Vega's estimate, and SVG ids are reset before each chart, so the same input gives the same bytes.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Figure, Figures } from './figures';
import type { HistoryEntry } from './history';

export const CHARTS_DIR = join(import.meta.dirname, '..', 'docs', 'benchmarks');

/** A parsed target: `≥ 0.5` is about the ratio, `≤ 1.5 s` about the value. */
export interface Target {
  readonly op: '≥' | '≤';
  readonly bound: number;
  /** The unit written after the number ('' for a ratio target). */
  readonly unit: string;
}

export class BenchChartError extends Error {
  constructor(
    readonly code: 'BENCH_TARGET_UNPARSEABLE',
    message: string,
  ) {
    super(message);
    this.name = 'BenchChartError';
  }
}

const TARGET = /^(≥|>=|≤|<=)\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(.*)$/;

export function parseTarget(figure: string, target: string): Target {
  const m = TARGET.exec(target.trim());
  if (!m)
    throw new BenchChartError(
      'BENCH_TARGET_UNPARSEABLE',
      `figure ${figure}: target ${JSON.stringify(target)} is not "≥ N [unit]" or "≤ N [unit]"`,
    );
  const unit = m[3]!.trim();
  return {
    op: m[1] === '≥' || m[1] === '>=' ? '≥' : '≤',
    bound: Number(m[2]!.replaceAll(',', '')),
    unit: unit === '×' || unit === 'x' ? '' : unit,
  };
}

/** What a chart plots for a figure, or undefined when the figure is not charted. */
export interface Measure {
  readonly kind: 'ratio' | 'value';
  readonly measure: number;
  readonly target?: Target;
  /** The value's unit ('×' for a ratio). */
  readonly unit: string;
  /** Axis title with the unit. */
  readonly axis: string;
}

export function measureOf(
  name: string,
  f: Pick<Figure, 'value' | 'unit' | 'reference' | 'ratio' | 'target'>,
): Measure | undefined {
  const target = f.target !== undefined ? parseTarget(name, f.target) : undefined;
  if (target && (target.unit !== '' || f.ratio === undefined))
    return { kind: 'value', measure: f.value, target, unit: f.unit, axis: f.unit };
  const ratio = exactRatio(f);
  if (ratio === undefined) return undefined;
  return { kind: 'ratio', measure: ratio, ...(target ? { target } : {}), unit: '×', axis: 'ratio (×)' };
}

/**
 * A figure's ratio from its value and reference, not the recorded `ratio`: that one is rounded to two decimals, which
 * can round a miss onto its target (0.8985 is recorded as 0.9, and 0.9 ≥ 0.9).
 */
function exactRatio(f: Pick<Figure, 'value' | 'reference' | 'ratio'>): number | undefined {
  if (f.ratio === undefined) return undefined;
  return f.reference !== undefined && f.reference > 0 ? f.value / f.reference : f.ratio;
}

/**
 * The benchmark group a figure belongs to: the longest benchmark name (`stream-apply` as `stream_apply`) its name
 * starts with, else the part before its first underscore.
 */
export function groupOf(figure: string, benches: readonly string[]): string {
  const hit = benches
    .filter((b) => figure.startsWith(`${b.replaceAll('-', '_')}_`))
    .sort((a, b) => b.length - a.length)[0];
  return hit ?? figure.split('_')[0]!;
}

const fmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
/** Ratios to three decimals: two would show 0.8985 as 0.9 beside a 0.9 target it misses. */
const fmtRatio = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });
const shown = (m: Measure, n: number) => (m.kind === 'ratio' ? `${fmtRatio.format(n)}×` : `${fmt.format(n)} ${m.unit}`);
const targetText = (m: Measure) => (m.target ? `${m.target.op} ${shown(m, m.target.bound)}` : '');
const met = (m: Measure) =>
  !m.target ? undefined : m.target.op === '≥' ? m.measure >= m.target.bound : m.measure <= m.target.bound;

// Colours with ≥ 4.5:1 contrast on white, told apart without colour too (the row title says met or missed).
const INK = '#222222';
const MET = '#1f4e79';
const MISSED = '#a04500';
const NO_TARGET = '#555555';
const CONFIG = {
  background: 'white',
  font: 'sans-serif',
  title: { color: INK, subtitleColor: INK, fontSize: 13, anchor: 'start', frame: 'group' },
  axis: {
    labelColor: INK,
    titleColor: INK,
    domainColor: '#555555',
    tickColor: '#555555',
    gridColor: '#dddddd',
    labelFontSize: 11,
    titleFontSize: 11,
  },
  view: { stroke: null },
} as const;

/** A chart: its Vega-Lite spec, and the title and description written into the SVG for screen readers. */
export interface Chart {
  readonly file: string;
  readonly title: string;
  readonly description: string;
  readonly spec: TopLevelSpec;
}

/** Latest measure of each charted figure of one group against its target. */
export function latestChart(group: string, figures: readonly (readonly [string, Figure])[]): Chart | undefined {
  const rows = figures
    .map(([name, f]) => ({ name, m: measureOf(name, f) }))
    .filter((r): r is { name: string; m: Measure } => r.m !== undefined)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (rows.length === 0) return undefined;
  const title = `${group}: latest figures against their targets`;
  const lines = rows.map(({ name, m }) => {
    const ok = met(m);
    return `${name} ${shown(m, m.measure)}${m.target ? ` (target ${targetText(m)}: ${ok ? 'met' : 'missed'})` : ''}`;
  });
  const panels = rows.map(({ name, m }) => {
    const ok = met(m);
    const top = Math.max(m.measure, m.target?.bound ?? 0) * 1.1 || 1;
    const status = ok === undefined ? 'no target' : `target ${targetText(m)}: ${ok ? 'met' : 'missed'}`;
    return {
      title: { text: name, subtitle: `${shown(m, m.measure)} (${status})` },
      width: 440,
      height: 22,
      data: { values: [{ figure: name, measure: m.measure, ...(m.target ? { target: m.target.bound } : {}) }] },
      encoding: { x: { type: 'quantitative', scale: { domain: [0, top], nice: false }, title: m.axis } },
      layer: [
        {
          mark: {
            type: 'bar',
            color: ok === undefined ? NO_TARGET : ok ? MET : MISSED,
            height: 16,
            description: `${name} measure`,
          },
          encoding: { x: { field: 'measure', type: 'quantitative' } },
        },
        ...(m.target
          ? [
              {
                mark: { type: 'tick', color: INK, opacity: 1, thickness: 3, size: 22, description: `${name} target` },
                encoding: { x: { field: 'target', type: 'quantitative' } },
              },
            ]
          : []),
      ],
    };
  });
  const spec = {
    title: {
      text: title,
      subtitle: ['bar: the measure (blue: target met, orange: missed,', 'grey: no target); black tick: the target'],
      subtitlePadding: 6,
      offset: 16,
    },
    description: lines.join('; '),
    config: CONFIG,
    spacing: 18,
    vconcat: panels,
  } as unknown as TopLevelSpec;
  return { file: `latest-${group.replaceAll('_', '-')}.svg`, title, description: lines.join('; '), spec };
}

const DAY_MS = 86_400_000;
const minute = (t: number) => new Date(t).toISOString().slice(0, 16).replace('T', ' ');

/** Every run of each charted figure of one group over time, one panel per figure on a shared time axis. */
export function historyChart(group: string, entries: readonly HistoryEntry[]): Chart | undefined {
  const byFigure = new Map<string, HistoryEntry[]>();
  for (const e of entries) byFigure.set(e.figure, [...(byFigure.get(e.figure) ?? []), e]);
  const series = [...byFigure.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, runs]) => {
      const sorted = [...runs].sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
      const last = measureOf(name, sorted[sorted.length - 1]!);
      if (!last) return undefined;
      // Each run measured as the latest target says (a target's unit decides ratio or value for the whole panel).
      const points = sorted
        .map((e) => ({
          time: Date.parse(e.time),
          measure: last.kind === 'ratio' ? exactRatio(e) : e.value,
          commit: e.commit,
        }))
        .filter((p): p is { time: number; measure: number; commit: string } => p.measure !== undefined)
        .map((p) => ({
          ...p,
          label: `${name} ${shown(last, p.measure)}, run of ${minute(p.time)} UTC on ${p.commit}`,
        }));
      return points.length > 0 ? { name, last, points } : undefined;
    })
    .filter((s) => s !== undefined);
  if (series.length === 0) return undefined;
  const times = series.flatMap((s) => s.points.map((p) => p.time));
  const [first, latest] = [Math.min(...times), Math.max(...times)];
  const pad = Math.max((latest - first) * 0.05, DAY_MS / 2);
  const domain = [first - pad, latest + pad];
  const day = (t: number) => new Date(t).toISOString().slice(0, 10);
  const title = `${group}: figures over time`;
  const description = `${title}, ${day(first)} to ${day(latest)}: ${series
    .map(
      ({ name, last, points }) =>
        `${name} ${points.length} run${points.length === 1 ? '' : 's'}, ${points.map((p) => shown(last, p.measure)).join(' → ')}${last.target ? ` (target ${targetText(last)})` : ''}`,
    )
    .join('; ')}`;
  const panels = series.map(({ name, last, points }) => {
    const top = Math.max(...points.map((p) => p.measure), last.target?.bound ?? 0) * 1.1 || 1;
    return {
      title: { text: name, subtitle: last.target ? `dashed: target ${targetText(last)}` : 'no target' },
      width: 440,
      height: 110,
      layer: [
        {
          data: { values: points },
          encoding: {
            x: {
              field: 'time',
              type: 'temporal',
              scale: { type: 'utc', domain },
              axis: { format: '%Y-%m-%d', tickCount: 'day', labelAngle: 0 },
              title: 'run (UTC)',
            },
            y: { field: 'measure', type: 'quantitative', scale: { domain: [0, top], nice: false }, title: last.axis },
          },
          layer: [
            { mark: { type: 'line', color: MET, strokeWidth: 1.5, description: `${name} over time` } },
            {
              mark: { type: 'point', color: MET, filled: true, size: 40, opacity: 1 },
              encoding: { description: { field: 'label' } },
            },
          ],
        },
        ...(last.target
          ? [
              {
                data: { values: [{ target: last.target.bound }] },
                mark: { type: 'rule', color: INK, strokeDash: [5, 4], strokeWidth: 1.5, description: `${name} target` },
                encoding: { y: { field: 'target', type: 'quantitative' } },
              },
            ]
          : []),
      ],
    };
  });
  const spec = {
    title: {
      text: title,
      subtitle: [
        'one point per run: its ratio to the reference',
        'measured in the same run, or its value when the',
        'target has a unit',
      ],
      subtitlePadding: 6,
      offset: 16,
    },
    description,
    config: CONFIG,
    spacing: 24,
    vconcat: panels,
  } as unknown as TopLevelSpec;
  return { file: `history-${group.replaceAll('_', '-')}.svg`, title, description, spec };
}

const escapeXml = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/** Renders a chart to SVG text, with `<title>` and `<desc>` as the SVG's accessible name and description. */
export async function renderSvg(chart: Chart): Promise<string> {
  vega.resetSVGDefIds();
  const view = new vega.View(vega.parse(compile(chart.spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const id = chart.file.replace(/\.svg$/, '');
    const open = svg.indexOf('>', svg.indexOf('<svg')) + 1;
    const head = svg.slice(0, open - 1).replace('<svg ', `<svg role="img" aria-labelledby="${id}-title ${id}-desc" `);
    return `${head}><title id="${id}-title">${escapeXml(chart.title)}</title><desc id="${id}-desc">${escapeXml(chart.description)}</desc>${svg.slice(open)}\n`;
  } finally {
    view.finalize();
  }
}

/** The charts of one state of the figures: a latest and a history chart per benchmark group. */
export function chartsFor(latest: Figures, history: readonly HistoryEntry[], benches: readonly string[]): Chart[] {
  const groups = new Set([...Object.keys(latest), ...history.map((e) => e.figure)].map((f) => groupOf(f, benches)));
  const charts: Chart[] = [];
  for (const group of [...groups].sort()) {
    const mine = (figure: string) => groupOf(figure, benches) === group;
    const l = latestChart(
      group,
      Object.entries(latest).filter(([name]) => mine(name)),
    );
    const h = historyChart(
      group,
      history.filter((e) => mine(e.figure)),
    );
    if (l) charts.push(l);
    if (h) charts.push(h);
  }
  return charts;
}

/**
 * Writes the charts into `dir`, and removes the charts of groups that no longer have any (only files named as this
 * module names them). A file whose bytes would not change is not rewritten. Returns the files written or kept.
 */
export async function writeCharts(charts: readonly Chart[], dir = CHARTS_DIR): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const names = new Set(charts.map((c) => c.file));
  for (const f of readdirSync(dir))
    if (/^(latest|history)-[a-z0-9-]+\.svg$/.test(f) && !names.has(f)) rmSync(join(dir, f));
  const out: string[] = [];
  for (const chart of charts) {
    const path = join(dir, chart.file);
    const svg = await renderSvg(chart);
    if (!existsSync(path) || readFileSync(path, 'utf8') !== svg) writeFileSync(path, svg);
    out.push(path);
  }
  return out;
}
