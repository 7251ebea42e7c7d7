/**
 * EventQueue on an SQS FIFO queue.
 *
 * `MessageGroupId` = the person (employeeId) keeps one person's events in order while different
 * people are processed in parallel (the queue uses per-group throughput). `MessageDeduplicationId`
 * = the idempotency key (HR events) or the Okta event id (drift): SQS drops a second send with the
 * same id within five minutes, which is what makes the webhook's "record, then enqueue, and
 * re-enqueue on a redelivery" safe.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { EventQueue, QueueMessage } from '#app/ports';
import { JmlError } from '#core/errors';
import type { WiringContext } from './bootstrap.ts';
import { ENV, required } from './config.ts';
import { once, type Lazy } from './lazy.ts';

const sdk = once(() => import('@aws-sdk/client-sqs'));

/** SQS limits: group and deduplication ids are 1–128 characters of `[!-~]`. */
const SQS_ID = /^[\x21-\x7e]{1,128}$/;

/** A message the queue cannot take (bad group or deduplication id). Names the field, never the value. */
export class QueueMessageInvalid extends JmlError {}

export interface SqsEventQueueOptions {
  client: Lazy<SQSClient>;
  queueUrl: string;
}

export class SqsEventQueue implements EventQueue {
  private readonly client: () => Promise<SQSClient>;

  constructor(private readonly options: SqsEventQueueOptions) {
    this.client = once(options.client);
    if (!options.queueUrl.endsWith('.fifo')) throw new QueueMessageInvalid(`events queue must be a FIFO queue (URL ending in .fifo)`);
  }

  async send(message: QueueMessage, options: { groupId: string; deduplicationId: string }): Promise<void> {
    if (!SQS_ID.test(options.groupId)) throw new QueueMessageInvalid('groupId: must be 1-128 printable ASCII characters without spaces');
    if (!SQS_ID.test(options.deduplicationId)) {
      throw new QueueMessageInvalid('deduplicationId: must be 1-128 printable ASCII characters without spaces');
    }
    const [{ SendMessageCommand }, client] = await Promise.all([sdk(), this.client()]);
    await client.send(
      new SendMessageCommand({
        QueueUrl: this.options.queueUrl,
        MessageBody: JSON.stringify(message),
        MessageGroupId: options.groupId,
        MessageDeduplicationId: options.deduplicationId,
      }),
    );
  }
}

/** Entry wiring: the events queue from `JML_EVENTS_QUEUE_URL`. */
export function wireQueue({ config }: WiringContext): EventQueue {
  const queueUrl = required(config.eventsQueueUrl, ENV.eventsQueueUrl, 'the events queue');
  return new SqsEventQueue({ client: async () => new (await sdk()).SQSClient({}), queueUrl });
}
