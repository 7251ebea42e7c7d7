/**
 * dynalite listening on 127.0.0.1 and closed without losing a request: the one place both the
 * in-process ledger (`dynalite.ts`) and the ledger in a process of its own
 * (`dynalite-process.mjs`) start and stop it. Plain JavaScript so the child process runs it
 * without a TypeScript loader.
 *
 * dynalite throws (an uncaught exception that ends the process) when LevelDB closes under a
 * request it is still working on — an update reads, then writes — so closing waits until the
 * requests it has are answered (10 s at most) and drops any that arrive meanwhile before dynalite
 * has read their bodies.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dynalite = require('dynalite');

// dynalite 4 reads LevelDB through streams over abstract-level iterators and, when a stream ends
// or is destroyed, closes its iterator through `iterator.return()` — a method abstract-level 3's
// iterators do not have (they have `close()`). Every Query, Scan and table listing therefore left
// its iterator open: on disk each pins LevelDB's memory (memtables it would free), in memory each
// keeps the tree it started on, so the local runtime's memory grew with every query it made
// (~0.75 MB per HR event on disk). Give the iterators the method dynalite calls.
const { AbstractIterator } = createRequire(require.resolve('dynalite'))('abstract-level');
const iteratorBase = Object.getPrototypeOf(AbstractIterator.prototype);
if (typeof iteratorBase.return !== 'function') {
  Object.defineProperty(iteratorBase, 'return', {
    value() {
      return this.close();
    },
    configurable: true,
    writable: true,
  });
}

/** How long closing waits for requests dynalite is still working on. */
const CLOSE_DRAIN_MS = 10_000;

/**
 * @param {object} settings dynalite's options
 * @param {number} [port] 0 or absent: a free one
 * @returns {Promise<{ port: number, close: () => Promise<void> }>}
 */
export async function listenDynalite(settings, port = 0) {
  const server = dynalite(settings);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(undefined);
    });
  });
  let inFlight = 0;
  let closing = false;
  /** @type {(() => void) | undefined} */
  let drained;
  server.on('request', (req, res) => {
    if (closing) return void req.socket.destroy();
    inFlight += 1;
    const end = res.end.bind(res);
    res.end = (...args) => {
      if (--inFlight === 0) drained?.();
      return end(...args);
    };
  });
  /** @type {Promise<void> | undefined} */
  let closed;
  const close = () =>
    (closed ??= (async () => {
      closing = true;
      if (inFlight > 0) {
        /** @type {NodeJS.Timeout | undefined} */
        let timer;
        await Promise.race([new Promise((r) => (drained = () => r(undefined))), new Promise((r) => (timer = setTimeout(r, CLOSE_DRAIN_MS)))]);
        clearTimeout(timer);
      }
      // dynalite's close stops the listener, then closes LevelDB (which releases its lock).
      await new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve(undefined)));
        server.closeAllConnections();
      });
    })());
  return { port: server.address().port, close };
}
