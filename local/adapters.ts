/**
 * In-process stand-ins for the AWS parts that have no local server: SQS FIFO, EventBridge
 * Scheduler, SES (an outbox), Secrets Manager (env), CloudWatch metrics, and the clock.
 * Each implements the same port as its AWS adapter, with the semantics the product relies on.
 */
import { randomUUID } from 'node:crypto';
import type { SQSEvent } from 'aws-lambda';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type {
  Clock,
  EventQueue,
  Mailer,
  MetricsSink,
  OutgoingMail,
  QueueMessage,
  ScheduledAction,
  Scheduler,
  SecretName,
  Secrets,
} from '#app/ports';

/** A clock that tests and the demo can move forward ("jump to the retention date"). */
export class AdjustableClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
  set(at: Date): void {
    this.offsetMs = at.getTime() - Date.now();
  }
}

/** Small JSON file persistence (atomic rename) so local state survives a restart. */
export class JsonFile<T> {
  constructor(private readonly path: string | undefined, private readonly empty: () => T) {}
  load(): T {
    if (!this.path) return this.empty();
    try {
      return JSON.parse(readFileSync(this.path, 'utf8')) as T;
    } catch {
      return this.empty();
    }
  }
  save(value: T): void {
    if (!this.path) return;
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(value, null, 2));
    renameSync(tmp, this.path);
  }
}

export interface OutboxMail extends OutgoingMail {
  messageId: string;
  sentAt: string;
}

/**
 * SES, locally: every mail that would have been sent, newest last (`GET /local/outbox`).
 * Mails are only ever appended, and a runtime that takes over a data directory loads them from
 * the same file, so a mail's position (its index) is stable across restarts: a reader can follow
 * the outbox with "everything from position N on" (`since`).
 *
 * The file is a JSON array, one mail a line, and a mail is appended in place (one positioned
 * write over the closing bracket) rather than the whole array written again: a soak sends
 * thousands of mails of a few KB each, and rewriting them all on every send grows with the square
 * of their number. A process killed mid-send leaves the file as it was before the send or after.
 */
export class Outbox implements Mailer {
  readonly mails: OutboxMail[];
  private bytes = 0;
  private static readonly TAIL = '\n]\n';
  constructor(private readonly clock: Clock, private readonly path?: string) {
    this.mails = new JsonFile<OutboxMail[]>(path, () => []).load();
    if (!path) return;
    // Written once in the one-mail-a-line form (whatever form it had), so appends know its tail.
    const text = `[${this.mails.map((m) => `\n${JSON.stringify(m)}`).join(',')}${Outbox.TAIL}`;
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, path);
    this.bytes = Buffer.byteLength(text);
  }
  async send(mail: OutgoingMail): Promise<{ messageId: string }> {
    const messageId = `local-${randomUUID()}`;
    const sent: OutboxMail = { ...mail, messageId, sentAt: this.clock.now().toISOString() };
    if (this.path) {
      const tail = Buffer.byteLength(Outbox.TAIL);
      const chunk = Buffer.from(`${this.mails.length ? ',' : ''}\n${JSON.stringify(sent)}${Outbox.TAIL}`);
      const fd = openSync(this.path, 'r+');
      try {
        writeSync(fd, chunk, 0, chunk.length, this.bytes - tail);
      } finally {
        closeSync(fd);
      }
      this.bytes += chunk.length - tail;
    }
    this.mails.push(sent);
    return { messageId };
  }

  /**
   * The mails from position `after` on (`after` = how many the reader has seen), and the
   * position to read from next time (the outbox's length; smaller than `after` when this outbox
   * is not the one the reader followed, e.g. a runtime on another data directory).
   */
  since(after = 0): { mails: OutboxMail[]; next: number } {
    return { mails: this.mails.slice(after), next: this.mails.length };
  }
}

/** Secrets Manager, locally: from env with documented dev defaults. */
export class EnvSecrets implements Secrets {
  constructor(private readonly values: Record<SecretName, string>) {}
  async get(name: SecretName): Promise<string[]> {
    return this.values[name].split(',').map((s) => s.trim()).filter(Boolean);
  }
}

export interface MetricPoint {
  name: string;
  value: number;
  unit: string;
  dimensions: Record<string, string>;
  at: string;
}

/** CloudWatch EMF, locally: points kept in memory for `jml kpis` and the demo's summary. */
export class MemoryMetrics implements MetricsSink {
  readonly points: MetricPoint[] = [];
  constructor(private readonly clock: Clock) {}
  put(name: string, value: number, unit: MetricPoint['unit'], dimensions: Record<string, string> = {}): void {
    this.points.push({ name, value, unit, dimensions, at: this.clock.now().toISOString() });
  }
  flush(): void {}
}

export interface ScheduledEntry {
  name: string;
  at: string;
  action: ScheduledAction;
}

/**
 * EventBridge Scheduler, locally: one-time schedules by deterministic name, fired by `tick()`
 * when the (adjustable) clock passes their time. Upsert moves a schedule; delete cancels it.
 */
export class LocalScheduler implements Scheduler {
  private readonly entries: Map<string, ScheduledEntry>;
  private readonly file: JsonFile<ScheduledEntry[]>;
  private timer?: NodeJS.Timeout;
  readonly fired: Array<ScheduledEntry & { firedAt: string; error?: string }> = [];

  constructor(
    private readonly clock: Clock,
    private readonly dispatch: (entry: ScheduledEntry) => Promise<void>,
    path?: string,
  ) {
    this.file = new JsonFile(path, () => []);
    this.entries = new Map(this.file.load().map((e) => [e.name, e]));
  }

  async upsertOnce(name: string, at: Date, action: ScheduledAction): Promise<void> {
    this.entries.set(name, { name, at: at.toISOString(), action });
    this.file.save([...this.entries.values()]);
  }

  async delete(name: string): Promise<boolean> {
    const had = this.entries.delete(name);
    if (had) this.file.save([...this.entries.values()]);
    return had;
  }

  list(): ScheduledEntry[] {
    return [...this.entries.values()].sort((a, b) => a.at.localeCompare(b.at));
  }

  /** Fires every schedule that is due (ActionAfterCompletion: DELETE). Returns how many fired. */
  async tick(): Promise<number> {
    const now = this.clock.now().toISOString();
    const due = this.list().filter((e) => e.at <= now);
    for (const entry of due) {
      this.entries.delete(entry.name);
      this.file.save([...this.entries.values()]);
      try {
        await this.dispatch(entry);
        this.fired.push({ ...entry, firedAt: now });
      } catch (e) {
        this.fired.push({ ...entry, firedAt: now, error: (e as Error).message });
      }
    }
    return due.length;
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

export interface QueueRecord {
  messageId: string;
  body: string;
  groupId: string;
  deduplicationId: string;
  receiveCount: number;
}

/** The SQS event a FIFO consumer Lambda receives for one message. */
export function toSqsEvent(record: QueueRecord, queueArn = 'arn:aws:sqs:local:000000000000:jml-events.fifo'): SQSEvent {
  const now = String(Date.now());
  return {
    Records: [
      {
        messageId: record.messageId,
        receiptHandle: record.messageId,
        body: record.body,
        attributes: {
          ApproximateReceiveCount: String(record.receiveCount),
          SentTimestamp: now,
          SenderId: 'local',
          ApproximateFirstReceiveTimestamp: now,
          MessageGroupId: record.groupId,
          MessageDeduplicationId: record.deduplicationId,
          SequenceNumber: now,
        },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: queueArn,
        awsRegion: 'local',
      },
    ],
  };
}

/**
 * SQS FIFO, locally: per message-group order (a group's next message waits until the previous
 * one is done), deduplication on the deduplication id for five minutes, redelivery on failure
 * and a dead-letter list after `maxReceiveCount` — the semantics the product depends on.
 */
export class LocalFifoQueue implements EventQueue {
  private readonly groups = new Map<string, QueueRecord[]>();
  private readonly busy = new Set<string>();
  private readonly seen = new Map<string, number>();
  readonly deadLetters: Array<QueueRecord & { error: string }> = [];
  private idle: Array<() => void> = [];
  static readonly DEDUP_WINDOW_MS = 5 * 60_000;

  constructor(
    private readonly consume: (record: QueueRecord) => Promise<void>,
    private readonly options: { maxReceiveCount?: number; retryDelayMs?: number; now?: () => number } = {},
  ) {}

  async send(message: QueueMessage, options: { groupId: string; deduplicationId: string }): Promise<void> {
    const now = (this.options.now ?? Date.now)();
    const last = this.seen.get(options.deduplicationId);
    if (last !== undefined && now - last < LocalFifoQueue.DEDUP_WINDOW_MS) return; // deduplicated, as SQS does
    this.seen.set(options.deduplicationId, now);
    const record: QueueRecord = {
      messageId: randomUUID(),
      body: JSON.stringify(message),
      groupId: options.groupId,
      deduplicationId: options.deduplicationId,
      receiveCount: 0,
    };
    const list = this.groups.get(options.groupId) ?? [];
    list.push(record);
    this.groups.set(options.groupId, list);
    queueMicrotask(() => void this.drain(options.groupId));
  }

  private async drain(groupId: string): Promise<void> {
    if (this.busy.has(groupId)) return;
    this.busy.add(groupId);
    try {
      for (;;) {
        const list = this.groups.get(groupId);
        const head = list?.[0];
        if (!head) break;
        head.receiveCount += 1;
        try {
          await this.consume(head);
          list!.shift();
        } catch (e) {
          if (head.receiveCount >= (this.options.maxReceiveCount ?? 5)) {
            list!.shift();
            this.deadLetters.push({ ...head, error: (e as Error).message });
          } else {
            await new Promise((r) => setTimeout(r, this.options.retryDelayMs ?? 200));
          }
        }
      }
      this.groups.delete(groupId);
    } finally {
      this.busy.delete(groupId);
      if (!this.pending()) for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  /** Messages not yet consumed. */
  pending(): number {
    let n = 0;
    for (const list of this.groups.values()) n += list.length;
    return n;
  }

  /** Resolves when every message has been consumed (or dead-lettered). */
  drained(): Promise<void> {
    if (!this.pending() && !this.busy.size) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}
