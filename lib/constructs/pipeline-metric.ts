import { Duration } from 'aws-cdk-lib';
import { Metric, type MetricOptions } from 'aws-cdk-lib/aws-cloudwatch';
import { METRICS_NAMESPACE, PIPELINE_DIMENSION } from '../../shared/metrics';

/**
 * A metric the runtimes emit as EMF (shared/metrics.ts), with the pipeline's dimension. `dimensions` adds the ones a
 * runtime puts beside it (the merge's Powertools `service`).
 */
export function pipelineMetric(
  pipelineId: string,
  metricName: string,
  statistic: string,
  options: MetricOptions = {},
  dimensions: Record<string, string> = {},
): Metric {
  return new Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { ...dimensions, [PIPELINE_DIMENSION]: pipelineId },
    statistic,
    period: Duration.minutes(1),
    ...options,
  });
}
