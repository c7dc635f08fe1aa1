/**
 * The CloudWatch dashboard and the local dashboard page read alike: the synthesized dashboard's graphs are the shared
 * layout's sections (shared/dashboard-layout.ts), same titles, same metrics (namespace, name, statistic, axis), same
 * order, for each shape of pipeline the stages deploy.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type DashboardShape, dashboardSections } from '../../shared/dashboard-layout';
import { type SynthesizedStage, synthStage } from '../infra/support/synth';

interface Widget {
  readonly title: string;
  readonly metrics: readonly string[];
}

/** The dashboard's widgets, top to bottom, each as its title and its metrics (`namespace/name:statistic:axis`). */
function synthesizedWidgets(stage: SynthesizedStage): Widget[] {
  const [dashboard] = Object.values(stage.templates.observability.findResources('AWS::CloudWatch::Dashboard'));
  const body = dashboard!.Properties.DashboardBody as string | { 'Fn::Join': [string, unknown[]] };
  // Tokens (alarm ARNs, regions) sit inside JSON strings: any placeholder keeps the body parseable.
  const text =
    typeof body === 'string' ? body : body['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : 'T')).join('');
  const widgets = (JSON.parse(text) as { widgets: { y: number; x: number; properties: Record<string, unknown> }[] })
    .widgets;
  return widgets
    .sort((a, b) => a.y - b.y || a.x - b.x)
    .filter((w) => Array.isArray(w.properties.metrics))
    .map((w) => ({
      title: String(w.properties.title),
      metrics: (w.properties.metrics as unknown[][]).map((parts) => {
        const opts = (typeof parts.at(-1) === 'object' ? parts.at(-1) : {}) as { stat?: string; yAxis?: string };
        const [namespace, name] = parts.filter((p) => typeof p === 'string') as string[];
        return `${namespace}/${name}:${opts.stat}:${opts.yAxis ?? 'left'}`;
      }),
    }));
}

function layoutWidgets(shape: DashboardShape): Widget[] {
  return dashboardSections(shape).map((s) => ({
    title: s.title,
    metrics: s.metrics.map((m) => `${m.namespace}/${m.name}:${m.statistic}:${m.axis}`),
  }));
}

describe('the dashboard layout shared by CloudWatch and the local page', () => {
  let dev: SynthesizedStage;
  let prod: SynthesizedStage;
  let lake: SynthesizedStage;
  beforeAll(() => {
    dev = synthStage('dev', undefined, { bundle: false });
    prod = synthStage('prod', undefined, { bundle: false });
    lake = synthStage('prod', (c) => ({ ...c, apply: { ...c.apply, source: 'lake' } }), { bundle: false });
  });

  it('is the synthesized dashboard of a stream-apply stage without Redshift delivery (dev), widget for widget', () => {
    expect(synthesizedWidgets(dev)).toEqual(layoutWidgets({ streamApply: true, redshiftDelivery: false }));
  });

  it('is the synthesized dashboard of a stream-apply stage with Redshift delivery (prod), widget for widget', () => {
    expect(synthesizedWidgets(prod)).toEqual(layoutWidgets({ streamApply: true, redshiftDelivery: true }));
  });

  it('is the synthesized dashboard of a lake-apply stage (no stream-apply graphs or freshness series)', () => {
    const widgets = synthesizedWidgets(lake);
    expect(widgets).toEqual(layoutWidgets({ streamApply: false, redshiftDelivery: true }));
    expect(widgets.map((w) => w.title).join('\n')).not.toMatch(/Stream apply/);
  });
});
