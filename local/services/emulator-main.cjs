// Runs one AWS emulator in its own process (started by emulators.ts). Plain CommonJS so it starts in ~100 ms.
// usage: node --openssl-legacy-provider emulator-main.cjs <kinesis|dynamodb|s3> <port> [dir]
'use strict';
const [kind, portText, dir] = process.argv.slice(2);
const port = Number(portText);
const ready = () => process.stdout.write(`listening ${kind} ${port}\n`);
if (kind === 'kinesis') {
  // kinesalite: stream operations take effect at once; in-memory unless a directory is given (LevelDB there).
  const opts = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 };
  if (dir) opts.path = dir;
  const server = require('kinesalite')(opts);
  server.listen(port, '127.0.0.1', ready);
} else if (kind === 'dynamodb') {
  // dynalite enforces condition expressions like DynamoDB; in-memory unless a directory is given.
  const opts = { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 };
  if (dir) opts.path = dir;
  require('dynalite')(opts).listen(port, '127.0.0.1', ready);
} else if (kind === 's3') {
  const S3rver = require('s3rver');
  new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory: dir,
    resetOnClose: false,
    allowMismatchedSignatures: true,
  })
    .run()
    .then(ready, (err) => {
      console.error(err);
      process.exit(1);
    });
} else {
  console.error(`unknown emulator ${kind}`);
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
