/** The server's refusals to send the binlog (error 1236), told apart: a purged binlog, or a start inside an event. */
import { describe, expect, it } from 'vitest';
import { dumpRefusalCode } from '../../containers/producer/src/start-position';

describe('a refusal of the binlog dump', () => {
  it('is BINLOG_PURGED for a file or GTID the server no longer has', () => {
    expect(dumpRefusalCode('Could not find first log file name in binary log index file')).toBe('BINLOG_PURGED');
    expect(
      dumpRefusalCode(
        'Could not find GTID state requested by slave in any binlog files. Probably the slave state is too old and required binlog files have been purged.',
      ),
    ).toBe('BINLOG_PURGED');
  });

  it('is POSITION_NOT_AN_EVENT_BOUNDARY for a start inside an event or past the end of a file', () => {
    for (const message of [
      "bogus data in log event; the first event 'mysql-bin.000001' at 1287, the last event read from 'mysql-bin.000001' at 1287",
      'binlog truncated in the middle of event; consider out of disk space on master',
      'Client requested master to start replication from impossible position',
      'Client requested master to start replication from position > file size',
    ]) {
      expect(dumpRefusalCode(message), message).toBe('POSITION_NOT_AN_EVENT_BOUNDARY');
    }
  });
});
