import { type EnvironmentConfig, environmentConfigSchema } from './environment-config';

/** A configuration that cannot be deployed: every problem, each naming the field and the value it had. */
export class ConfigError extends Error {
  constructor(
    readonly stage: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration for stage "${stage}":\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return '(not set)';
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Parses one environment's configuration, applying defaults. Collects every problem into one ConfigError whose
 * lines read `<field> = <value>: <what is wrong>`, so a bad value fails synth naming the field and the value.
 */
export function validateEnvironmentConfig(raw: unknown): EnvironmentConfig {
  const stage = String(valueAt(raw, ['stage']) ?? '(unnamed)');
  const res = environmentConfigSchema.safeParse(raw);
  if (!res.success) {
    const problems = res.error.issues.map((i) => {
      const path = i.path
        .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
        .join('')
        .slice(1);
      let message = i.message;
      if (i.code === 'invalid_union' && 'discriminator' in i)
        message = `must be one of the documented variants (${String(i.discriminator)})`;
      return `${path || '(root)'} = ${show(valueAt(raw, i.path))}: ${message}`;
    });
    throw new ConfigError(stage, problems);
  }
  return { ...res.data, pipelineId: res.data.pipelineId ?? res.data.stage };
}
