/** The server's refusals to send the binlog (error 1236), told apart: a purged binlog, or a start inside an event. */
import { describe, expect, it } from 'vitest';
import { chooseStart, dumpRefusalCode } from '../../containers/producer/src/start-position';

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

describe('the start-position policy', () => {
  const end = { file: 'mysql-bin.000009', pos: 4711 };
  const cp = { file: 'mysql-bin.000007', pos: 120, gtid: '0-1-55' };
  const base = { requested: { kind: 'checkpoint' } as const, flavor: 'mariadb' as const, binlogEnd: end };

  it('resumes from the checkpoint: by GTID on MariaDB, by file and position on MySQL or without a GTID', () => {
    expect(chooseStart({ ...base, checkpoint: cp, snapshotMode: 'initial' })).toEqual({
      from: { kind: 'gtid', gtidSet: '0-1-55' },
      initialSnapshot: false,
      reason: 'resuming from checkpoint',
    });
    expect(chooseStart({ ...base, flavor: 'mysql', checkpoint: cp, snapshotMode: 'initial' }).from).toEqual({
      kind: 'file',
      file: 'mysql-bin.000007',
      pos: 120,
    });
    expect(chooseStart({ ...base, checkpoint: { ...cp, gtid: null }, snapshotMode: 'initial' }).from).toEqual({
      kind: 'file',
      file: 'mysql-bin.000007',
      pos: 120,
    });
  });

  it('without a checkpoint starts at the binlog end, with a snapshot unless SNAPSHOT_MODE=never', () => {
    expect(chooseStart({ ...base, checkpoint: undefined, snapshotMode: 'initial' })).toEqual({
      from: { kind: 'file', ...end },
      initialSnapshot: true,
      reason: 'no checkpoint: snapshot of every captured table, streaming from the end of the binlog',
    });
    expect(chooseStart({ ...base, checkpoint: undefined, snapshotMode: 'never' })).toMatchObject({
      from: { kind: 'file', ...end },
      initialSnapshot: false,
    });
  });

  it('takes any other START_FROM as it is, checkpoint or not, without a snapshot', () => {
    const requested = { kind: 'gtid', gtidSet: '0-1-3' } as const;
    expect(chooseStart({ ...base, requested, checkpoint: cp, snapshotMode: 'initial' })).toEqual({
      from: requested,
      initialSnapshot: false,
      reason: 'START_FROM',
    });
  });
});
