/**
 * LOG_LEVEL: the producer's log lines below the configured level are dropped (debug < info < warn < error), the
 * others written whole, one JSON object per line on stdout.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../containers/producer/src/config';
import { log, setLogLevel } from '../../containers/producer/src/metrics';

/** The levels of the lines `log` wrote while `run` ran. */
function levelsWritten(run: () => void): string[] {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    run();
  } finally {
    spy.mockRestore();
  }
  return lines.map((l) => (JSON.parse(l) as { level: string }).level);
}

const everyLevel = () => {
  log('debug', 'd');
  log('info', 'i');
  log('warn', 'w');
  log('error', 'e');
};

afterEach(() => setLogLevel('info'));

describe('LOG_LEVEL', () => {
  it('writes info, warn and error by default, not debug', () => {
    expect(levelsWritten(everyLevel)).toEqual(['INFO', 'WARN', 'ERROR']);
  });

  it('writes only the configured level and those above it', () => {
    setLogLevel('debug');
    expect(levelsWritten(everyLevel)).toEqual(['DEBUG', 'INFO', 'WARN', 'ERROR']);
    setLogLevel('warn');
    expect(levelsWritten(everyLevel)).toEqual(['WARN', 'ERROR']);
    setLogLevel('error');
    expect(levelsWritten(everyLevel)).toEqual(['ERROR']);
  });

  it('is read from the environment by the producer config (info unless set), and refuses other values', () => {
    const env = { SOURCE_HOST: 'db', SOURCE_USER: 'cdc', STREAM_NAME: 's', CHECKPOINT_TABLE: 'cps', PIPELINE_ID: 'p' };
    expect(loadConfig(env).LOG_LEVEL).toBe('info');
    expect(loadConfig({ ...env, LOG_LEVEL: 'warn' }).LOG_LEVEL).toBe('warn');
    expect(() => loadConfig({ ...env, LOG_LEVEL: 'verbose' })).toThrow('LOG_LEVEL="verbose"');
  });
});
