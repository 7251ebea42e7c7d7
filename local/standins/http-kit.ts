/**
 * Shared plumbing for the stand-in target servers (Okta, Graph, SCIM): a loopback HTTP(S)
 * server, JSON helpers, and per-test controls for latency, rate limits and fault injection.
 *
 * Each stand-in owns its API semantics; this module owns only what is the same for all three,
 * so a test drives faults the same way whichever target it is testing.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/**
 * `lost`: the request is served (a write takes effect) but its answer never arrives: the
 * connection closes instead — what a client sees when a response is lost after the server acted.
 */
export type FaultKind = 'status' | 'timeout' | 'reset' | 'throttle' | 'lost';

export interface FaultRule {
  /** Only requests whose method matches (default: any). */
  method?: string;
  /** Only requests whose path (without query) matches. */
  path?: RegExp;
  kind: FaultKind;
  /** HTTP status for `status` faults (default 503). */
  status?: number;
  /** Seconds the client should wait, for `throttle` faults (default 1). */
  retryAfterSeconds?: number;
  /** How many matching requests to fault before the rule is spent (default: unlimited). */
  times?: number;
  /** Probability per matching request, 0..1 (default 1). */
  probability?: number;
}

export interface RateLimitConfig {
  /** Requests allowed per window. */
  limit: number;
  /** Window length in ms (Okta: 60 000). */
  windowMs: number;
}

export interface StandInControls {
  latencyMs: number;
  rateLimit?: RateLimitConfig;
  faults: FaultRule[];
  /** Deterministic randomness for probabilistic faults. */
  random: () => number;
}

export interface RateState {
  limit: number;
  remaining: number;
  /** Epoch ms at which the window resets. */
  resetAt: number;
  limited: boolean;
}

/** Fixed-window rate limiter, as Okta and most SaaS APIs count. */
export class RateLimiter {
  private windowStart = 0;
  private used = 0;
  constructor(private readonly config: RateLimitConfig, private readonly now: () => number = Date.now) {}

  take(): RateState {
    const t = this.now();
    if (t - this.windowStart >= this.config.windowMs) {
      this.windowStart = t - ((t - this.windowStart) % this.config.windowMs);
      if (t - this.windowStart >= this.config.windowMs) this.windowStart = t;
      this.used = 0;
    }
    const limited = this.used >= this.config.limit;
    if (!limited) this.used += 1;
    return {
      limit: this.config.limit,
      remaining: Math.max(0, this.config.limit - this.used),
      resetAt: this.windowStart + this.config.windowMs,
      limited,
    };
  }
}

/** Counts of what a stand-in served, for tests that prove idempotence by request counts. */
export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  at: number;
}

export type Decision =
  | { kind: 'pass' }
  | { kind: 'status'; status: number }
  | { kind: 'throttle'; retryAfterSeconds: number }
  | { kind: 'timeout' }
  | { kind: 'reset' }
  | { kind: 'lost' };

/** Picks the fault (if any) for a request and spends the rule. */
export function decideFault(controls: StandInControls, method: string, path: string): Decision {
  for (const rule of controls.faults) {
    if (rule.method && rule.method.toUpperCase() !== method.toUpperCase()) continue;
    if (rule.path && !rule.path.test(path)) continue;
    if (rule.times !== undefined && rule.times <= 0) continue;
    if (rule.probability !== undefined && controls.random() >= rule.probability) continue;
    if (rule.times !== undefined) rule.times -= 1;
    switch (rule.kind) {
      case 'status':
        return { kind: 'status', status: rule.status ?? 503 };
      case 'throttle':
        return { kind: 'throttle', retryAfterSeconds: rule.retryAfterSeconds ?? 1 };
      case 'timeout':
        return { kind: 'timeout' };
      case 'reset':
        return { kind: 'reset' };
      case 'lost':
        return { kind: 'lost' };
    }
  }
  return { kind: 'pass' };
}

/** A small seeded PRNG (mulberry32) so fault patterns repeat run to run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function defaultControls(): StandInControls {
  return { latencyMs: 0, faults: [], random: seededRandom(1) };
}

export async function readBody(req: IncomingMessage, limitBytes = 4 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limitBytes) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  contentType = 'application/json',
): void {
  const payload = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(payload ? { 'Content-Type': `${contentType}; charset=utf-8` } : {}),
    ...headers,
  });
  res.end(payload);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface TlsMaterial {
  key: string;
  cert: string;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1 (never another interface). `port` 0 picks a free port.
 * Tracks sockets so `close()` does not wait for keep-alive connections.
 */
export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: { port?: number; tls?: TlsMaterial } = {},
): Promise<RunningServer> {
  const server: Server = options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : createHttpServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const scheme = options.tls ? 'https' : 'http';
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Applies latency and the injected fault for a request. Returns true when the stand-in should
 * go on and serve it, false when the fault already answered (or dropped) the request.
 * `throttleHeaders` lets each stand-in answer a throttle in its own dialect.
 */
export async function applyControls(
  controls: StandInControls,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  answer: {
    error(res: ServerResponse, status: number): void;
    throttle(res: ServerResponse, retryAfterSeconds: number): void;
  },
): Promise<boolean> {
  if (controls.latencyMs > 0) await sleep(controls.latencyMs);
  const decision = decideFault(controls, req.method ?? 'GET', path);
  switch (decision.kind) {
    case 'pass':
      return true;
    case 'status':
      answer.error(res, decision.status);
      return false;
    case 'throttle':
      answer.throttle(res, decision.retryAfterSeconds);
      return false;
    case 'reset':
      req.socket.destroy();
      return false;
    case 'timeout':
      // Hold the request open without answering; the client's timeout must fire.
      // The socket is destroyed when the server closes.
      return false;
    case 'lost': {
      // Served as usual, but the answer is dropped: the connection closes when it would be sent.
      res.write = (() => {
        req.socket.destroy();
        return false;
      }) as typeof res.write;
      res.end = (() => {
        req.socket.destroy();
        return res;
      }) as typeof res.end;
      return true;
    }
  }
}
