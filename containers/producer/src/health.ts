/**
 * What `GET /health` answers (the ECS container health check calls it through healthcheck.ts). Healthy means the
 * producer can still make progress, judged by liveness and never by data movement: a source with no commits for
 * hours is normal, so the checkpoint not moving must not make a producer unhealthy (ECS would restart it in a loop).
 * - the binlog reader is alive: the replication connection delivered something (an event, or the heartbeat the server
 *   sends after HEARTBEAT_SECONDS without events) within the window, unless reading is paused on purpose
 *   (backpressure: the Kinesis sink's own retry limit covers a sink that stops draining);
 * - the housekeeping loop is alive: it saved the checkpoint (when there is one to save) and renewed the lease within
 *   the window;
 * - no fatal error, and the sink has not given up.
 */
import { createServer, type Server } from 'node:http';

export interface HealthFacts {
  readonly now: number;
  readonly fatal: boolean;
  readonly sinkFailed: boolean;
  /** When the housekeeping tick last completed (checkpoint saved when one exists, lease renewed). */
  readonly housekeptAt: number;
  /** When the replication connection last delivered an event or a heartbeat (the reader's start before the first). */
  readonly lastReadAt: number;
  /** Reading is paused for backpressure: no packets are expected meanwhile. */
  readonly readerPaused: boolean;
}

export interface Health {
  readonly healthy: boolean;
  /** Why not, one phrase each (empty when healthy). */
  readonly problems: readonly string[];
}

export function assessHealth(f: HealthFacts, staleMs: number): Health {
  const problems: string[] = [];
  if (f.fatal) problems.push('a fatal error occurred');
  if (f.sinkFailed) problems.push('the Kinesis sink gave up');
  const readAge = f.now - f.lastReadAt;
  if (!f.readerPaused && readAge >= staleMs) {
    problems.push(`nothing read from the binlog connection for ${Math.round(readAge / 1000)} s (not even a heartbeat)`);
  }
  const housekeptAge = f.now - f.housekeptAt;
  if (housekeptAge >= staleMs) {
    problems.push(`checkpoint and lease not renewed for ${Math.round(housekeptAge / 1000)} s`);
  }
  return { healthy: problems.length === 0, problems };
}

/**
 * Serves `GET /health` (200 when healthy, 503 otherwise; any other path 503) with the assessment, the checkpoint and
 * the events pending, from the facts `facts()` gives at each request.
 */
export function startHealthServer(
  port: number,
  staleMs: number,
  facts: () => HealthFacts & { readonly checkpoint: unknown; readonly pending: number },
  onListening: (port: number | undefined) => void,
): Server {
  const server = createServer((req, res) => {
    const f = facts();
    const { healthy, problems } = assessHealth(f, staleMs);
    res.writeHead(req.url === '/health' && healthy ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ healthy, problems, checkpoint: f.checkpoint, pending: f.pending }));
  });
  server.listen(port, '0.0.0.0', () => {
    const address = server.address();
    onListening(typeof address === 'object' ? address?.port : undefined);
  });
  return server;
}
