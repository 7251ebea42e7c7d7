/**
 * The SQS FIFO consumer (group = employeeId): `hr-event` and `scheduled-run` messages start runs
 * (`startRun`), `drift` messages open out-of-band-change exceptions (`handleDrift`).
 *
 * Partial batch failures the FIFO way (Powertools `SqsFifoPartialProcessorAsync`): records are
 * processed one after another, and after the first failure every remaining record of the batch
 * is reported failed without being processed, so SQS redelivers them after the failed one and a
 * person's events never overtake each other. A record that can never succeed (a malformed body,
 * a run id the ledger does not have) fails too: after the queue's maxReceiveCount it goes to the
 * dead-letter queue, where it is visible and alarmed on, instead of being dropped silently.
 */
import { SqsFifoPartialProcessorAsync, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import * as z from 'zod';
import { handleDrift } from '#app/drift';
import type { AppDeps, QueueMessage } from '#app/ports';
import { startRun } from '#app/start-run';
import { JmlError, ValidationError } from '#core/errors';
import { LIFECYCLES } from '#core/hr-event';
import { parseOrThrow } from '#core/validation';
import { processDeps, type DepsProvider } from './deps.ts';
import { logger } from './logger.ts';

const id = z.string().min(1).max(256);
export const QueueMessageSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('hr-event'), runId: id, employeeId: id, lifecycle: z.enum(LIFECYCLES).optional() }).strict(),
  z.object({ kind: z.literal('scheduled-run'), runId: id, employeeId: id }).strict(),
  z
    .object({
      kind: z.literal('drift'),
      eventId: id,
      employeeId: id.optional(),
      target: id,
      accountId: id.optional(),
      eventType: id,
      actor: z.string().max(1024).optional(),
      published: z.string().min(1).max(64),
    })
    .strict(),
]) satisfies z.ZodType<QueueMessage>;

/** The message names a run the ledger does not hold (never expected: runs are recorded before they are enqueued). */
export class RunMissing extends JmlError {}

export type StartRunConsumer = (event: SQSEvent, context?: Context) => Promise<SQSBatchResponse>;

export function parseQueueMessage(body: string): QueueMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new ValidationError(['(root): message body is not valid JSON']);
  }
  return parseOrThrow(QueueMessageSchema, json, 'queue message');
}

async function processRecord(app: AppDeps, record: SQSRecord): Promise<void> {
  const message = parseQueueMessage(record.body);
  logger.appendKeys({
    messageId: record.messageId,
    kind: message.kind,
    ...('runId' in message ? { runId: message.runId } : { eventId: message.eventId }),
    ...(message.employeeId ? { employeeId: message.employeeId } : {}),
  });
  try {
    if (message.kind === 'drift') {
      const r = await handleDrift(app, message);
      logger.info('drift handled', { outcome: r.outcome, exceptionId: r.exceptionId });
      return;
    }
    // The message names the person: their record and runs are read alongside the run's.
    const r = await startRun(app, {
      runId: message.runId,
      employeeId: message.employeeId,
      scheduled: message.kind === 'scheduled-run',
      ...(message.kind === 'hr-event' && message.lifecycle ? { lifecycle: message.lifecycle } : {}),
    });
    if (r.outcome === 'missing') throw new RunMissing(`run ${message.runId}: ${r.reason}`);
    logger.info('run start handled', { outcome: r.outcome, ...('reason' in r ? { reason: r.reason } : {}) });
  } finally {
    logger.removeKeys(['messageId', 'kind', 'runId', 'eventId', 'employeeId']);
  }
}

export function createStartRunHandler(deps: DepsProvider): StartRunConsumer {
  const run = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    const app = await deps();
    // One processor per invocation: it holds the batch's state, and a local runtime may call
    // this handler concurrently (Lambda never does, but nothing is lost by not sharing it).
    const processor = new SqsFifoPartialProcessorAsync();
    const recordHandler = async (record: SQSRecord) => {
      try {
        await processRecord(app, record);
      } catch (e) {
        const err = e as Error;
        logger.warn('queue record failed', { messageId: record.messageId, errorName: err.name, errorMessage: err.message });
        throw e;
      }
    };
    const response = await processPartialResponse(event, recordHandler, processor, { context, throwOnFullBatchFailure: false });
    return response as SQSBatchResponse;
  };
  const wrapped = middy<SQSEvent, SQSBatchResponse>(run).use(injectLambdaContext(logger, { resetKeys: true }));
  return (event, context) => wrapped(event, context ?? ({} as Context));
}

export const handler = createStartRunHandler(processDeps);
