/**
 * dynalite in a process of its own (`startDynalite({ ownProcess: true })`): listens on
 * 127.0.0.1, a free port, prints `{"port":N}` on stdout once listening, and closes on SIGTERM
 * or when its parent goes away (stdin closes) — exiting 0 once LevelDB is closed. dynalite's
 * options come as JSON in argv[2] (`dynaliteOptions` in dynalite.ts).
 */
import { listenDynalite } from './dynalite-server.mjs';

const { port, close } = await listenDynalite(JSON.parse(process.argv[2] ?? '{}'));
process.stdout.write(`${JSON.stringify({ port })}\n`);
const stop = () =>
  close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
