// ECS container health check: exit 0 when the producer's /health answers 200.
import { get } from 'node:http';

const port = Number(process.env.HEALTH_PORT ?? 8080);
const req = get({ host: '127.0.0.1', port, path: '/health', timeout: 3000 }, (res) =>
  process.exit(res.statusCode === 200 ? 0 : 1),
);
req.on('error', () => process.exit(1));
req.on('timeout', () => process.exit(1));
