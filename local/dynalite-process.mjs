/**
 * dynalite in a process of its own (`startDynalite({ ownProcess: true })`): listens on
 * 127.0.0.1, a free port, prints `{"port":N}` on stdout once listening, and closes on SIGTERM
 * or when its parent goes away (stdin closes). dynalite's options come as JSON in argv[2]
 * (`dynaliteOptions` in dynalite.ts).
 */
import { createRequire } from 'node:module';

const dynalite = createRequire(import.meta.url)('dynalite');
const server = dynalite(JSON.parse(process.argv[2] ?? '{}'));
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
