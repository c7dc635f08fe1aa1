import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedCall {
  readonly action: string;
  readonly body: Record<string, unknown>;
}

export type Script = (
  call: RecordedCall,
  n: number,
) => Record<string, unknown> | { __status: number; __type: string; message: string };

/**
 * A local HTTP endpoint speaking the Redshift Data API's JSON protocol (awsJson1_1, `X-Amz-Target:
 * RedshiftData.<Action>`), answering from a script. It stands in for Redshift, which has no emulator: the client
 * under test is the real AWS SDK RedshiftDataClient, so request shapes, serialization and error parsing are real.
 */
export async function startDataApiEndpoint(
  script: Script,
): Promise<{ url: string; calls: RecordedCall[]; close(): Promise<void> }> {
  const calls: RecordedCall[] = [];
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const action = String(req.headers['x-amz-target'] ?? '').replace('RedshiftData.', '');
    const call = { action, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> };
    calls.push(call);
    const out = script(call, calls.filter((c) => c.action === action).length);
    if ('__status' in out) {
      res.writeHead(out.__status as number, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ __type: out.__type, message: out.message }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
    res.end(JSON.stringify(out));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, calls, close: () => new Promise((r) => server.close(() => r())) };
}
