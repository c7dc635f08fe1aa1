/**
 * The producer's Kinesis write settings: one shard per table by default (`table`; `table-pk` on request), several PutRecords
 * calls go out at once, and a bad value fails at startup naming the variable and the value.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../containers/producer/src/config';

const env = { SOURCE_HOST: 'h', SOURCE_USER: 'u', STREAM_NAME: 's', CHECKPOINT_TABLE: 'cps', PIPELINE_ID: 'p' };

describe('producer write settings', () => {
  it('keeps a table on one shard and 8 PutRecords calls in flight by default', () => {
    const c = loadConfig(env);
    expect(c.PARTITION_KEY_MODE).toBe('table');
    expect(c.PUT_RECORDS_IN_FLIGHT).toBe(8);
    expect(loadConfig({ ...env, PARTITION_KEY_MODE: 'table-pk', PUT_RECORDS_IN_FLIGHT: '1' })).toMatchObject({
      PARTITION_KEY_MODE: 'table-pk',
      PUT_RECORDS_IN_FLIGHT: 1,
    });
  });

  it('refuses calls in flight outside 1 to 64 and an unknown key mode, naming variable and value', () => {
    expect(() => loadConfig({ ...env, PUT_RECORDS_IN_FLIGHT: '0' })).toThrow(/PUT_RECORDS_IN_FLIGHT="0": /);
    expect(() => loadConfig({ ...env, PUT_RECORDS_IN_FLIGHT: '65' })).toThrow(/PUT_RECORDS_IN_FLIGHT="65": /);
    expect(() => loadConfig({ ...env, PARTITION_KEY_MODE: 'row' })).toThrow(/PARTITION_KEY_MODE="row": /);
  });
});
