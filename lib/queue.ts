/**
 * The HR events queue: SQS FIFO (group = employeeId keeps one person's events in order,
 * deduplication id = idempotency key) with high-throughput settings (deduplication and
 * throughput per message group), a FIFO dead-letter queue after five receives, and the
 * async dead-letter queue (standard) for what AWS delivered asynchronously and could not be
 * processed: schedules Scheduler could not deliver, scheduled actions that failed after Lambda's
 * retries, and workflow-ended events the execution-ended function could not handle.
 *
 * Content-based deduplication is on because Scheduler's SQS target sends no deduplication id
 * for FIFO queues; the webhooks always send an explicit one, which takes precedence.
 */
import { Duration } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface QueuesProps {
  /** Visibility timeout: at least six times the consumer's timeout (AWS guidance for event sources). */
  consumerTimeout: Duration;
}

export const MAX_RECEIVE_COUNT = 5;

export class Queues extends Construct {
  readonly events: sqs.Queue;
  readonly eventsDeadLetter: sqs.Queue;
  readonly asyncDeadLetter: sqs.Queue;

  constructor(scope: Construct, id: string, props: QueuesProps) {
    super(scope, id);
    this.eventsDeadLetter = new sqs.Queue(this, 'EventsDlq', {
      fifo: true,
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.events = new sqs.Queue(this, 'Events', {
      fifo: true,
      contentBasedDeduplication: true,
      deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      visibilityTimeout: Duration.seconds(Math.max(props.consumerTimeout.toSeconds() * 6, 60)),
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.eventsDeadLetter, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
    this.asyncDeadLetter = new sqs.Queue(this, 'AsyncDlq', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
  }
}
