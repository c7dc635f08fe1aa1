/**
 * The producer's Kinesis write settings: a table spread over shards by key by default (`table-pk`; `table` on
 * request), several PutRecords calls go out at once, unacknowledged records are bounded in number and in bytes, and a
 * bad value fails at startup naming the variable and the value.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../containers/producer/src/config';

const env = { SOURCE_HOST: 'h', SOURCE_USER: 'u', STREAM_NAME: 's', CHECKPOINT_TABLE: 'cps', PIPELINE_ID: 'p' };

describe('producer write settings', () => {
  it('spreads a table over shards by key and keeps 8 PutRecords calls in flight by default', () => {
    const c = loadConfig(env);
    expect(c.PARTITION_KEY_MODE).toBe('table-pk');
    expect(c.PUT_RECORDS_IN_FLIGHT).toBe(8);
    expect(loadConfig({ ...env, PARTITION_KEY_MODE: 'table', PUT_RECORDS_IN_FLIGHT: '1' })).toMatchObject({
      PARTITION_KEY_MODE: 'table',
      PUT_RECORDS_IN_FLIGHT: 1,
    });
  });

  it('refuses calls in flight outside 1 to 64 and an unknown key mode, naming variable and value', () => {
    expect(() => loadConfig({ ...env, PUT_RECORDS_IN_FLIGHT: '0' })).toThrow(/PUT_RECORDS_IN_FLIGHT="0": /);
    expect(() => loadConfig({ ...env, PUT_RECORDS_IN_FLIGHT: '65' })).toThrow(/PUT_RECORDS_IN_FLIGHT="65": /);
    expect(() => loadConfig({ ...env, PARTITION_KEY_MODE: 'row' })).toThrow(/PARTITION_KEY_MODE="row": /);
  });

  it('bounds unacknowledged records at 64 MiB by default besides 20,000 events, and refuses less than 1 MiB naming variable and value', () => {
    expect(loadConfig(env)).toMatchObject({ MAX_IN_FLIGHT_EVENTS: 20_000, MAX_IN_FLIGHT_BYTES: 64 * 1024 * 1024 });
    expect(loadConfig({ ...env, MAX_IN_FLIGHT_BYTES: '8388608' }).MAX_IN_FLIGHT_BYTES).toBe(8 * 1024 * 1024);
    expect(() => loadConfig({ ...env, MAX_IN_FLIGHT_BYTES: '1000' })).toThrow(/MAX_IN_FLIGHT_BYTES="1000": /);
    expect(() => loadConfig({ ...env, MAX_IN_FLIGHT_BYTES: '64MB' })).toThrow(/MAX_IN_FLIGHT_BYTES="64MB": /);
  });

  it('aims snapshot chunks at 16 MiB of rows by default, from 1 MiB to 1 GiB, naming variable and value otherwise', () => {
    expect(loadConfig(env)).toMatchObject({ SNAPSHOT_CHUNK_ROWS: 4096, SNAPSHOT_CHUNK_BYTES: 16 * 1024 * 1024 });
    expect(() => loadConfig({ ...env, SNAPSHOT_CHUNK_BYTES: '1000' })).toThrow(/SNAPSHOT_CHUNK_BYTES="1000": /);
    expect(() => loadConfig({ ...env, SNAPSHOT_CHUNK_BYTES: String(2 ** 31) })).toThrow(
      /SNAPSHOT_CHUNK_BYTES="2147483648": /,
    );
  });
});
