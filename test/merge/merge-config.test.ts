import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambdas/merge/src/config';

const local = { WAREHOUSE: 'postgres', POSTGRES_URL: 'postgres://localhost/warehouse' };

describe('merge configuration: value limits and time budget', () => {
  it('defaults to truncating oversized text and to starting no record with less than 60 s left', () => {
    expect(loadConfig(local)).toMatchObject({ OVERSIZE_VALUES: 'truncate', MIN_REMAINING_MS: 60_000 });
    expect(loadConfig({ ...local, OVERSIZE_VALUES: 'poison', MIN_REMAINING_MS: '0' })).toMatchObject({
      OVERSIZE_VALUES: 'poison',
      MIN_REMAINING_MS: 0,
    });
  });

  it('refuses an unknown policy and a bad time budget, naming the variable and its value', () => {
    expect(() => loadConfig({ ...local, OVERSIZE_VALUES: 'drop', MIN_REMAINING_MS: '-5' })).toThrow(
      /CONFIG_INVALID: invalid merge configuration: OVERSIZE_VALUES="drop": .*; MIN_REMAINING_MS="-5": must be ≥ 0/,
    );
    expect(() => loadConfig({ ...local, MIN_REMAINING_MS: '1.5' })).toThrow(
      /MIN_REMAINING_MS="1.5": must be a whole number of milliseconds/,
    );
  });
});
