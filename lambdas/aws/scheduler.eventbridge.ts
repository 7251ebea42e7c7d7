/**
 * Scheduler port on EventBridge Scheduler: one-time schedules in the jml schedule group.
 *
 * - `at(yyyy-mm-ddThh:mm:ss)` in UTC, `ActionAfterCompletion: DELETE` (a fired schedule removes
 *   itself, so the deterministic name is free again), a retry policy, and the async DLQ for
 *   deliveries that still fail.
 * - Upsert: `CreateSchedule`; on `ConflictException` (the name exists — a moved effective date, a
 *   repeated run) `UpdateSchedule` with the full definition, which is how Scheduler replaces one.
 * - Targets (the choice is documented in docs/deploy.md):
 *   - `start-run` → the events FIFO queue (`SendMessage` templated target): the message is
 *     `{ kind: 'scheduled-run', runId, employeeId }` with `MessageGroupId` = employeeId, so a
 *     future-dated run queues behind that person's other events exactly like a webhook's. The
 *     queue has content-based deduplication on, as Scheduler requires for FIFO targets.
 *   - every other kind → the `scheduled-action` Lambda (`Invoke` templated target) with input
 *     `{ kind, payload, schedule, at }` (`at`: Scheduler's scheduled-time context attribute); it
 *     hands the firing to the application's dispatch for fired schedules. Lambda targets
 *     are invoked asynchronously: Scheduler's retry policy covers delivery, the function's own
 *     async retries and on-failure destination (the same DLQ) cover a failed action.
 * - A time already past (or within the next minute) is moved to one minute from now: the action
 *   was due, so it runs as soon as Scheduler can, instead of being refused.
 */
import type { CreateScheduleCommandInput, SchedulerClient } from '@aws-sdk/client-scheduler';
import type { ScheduledAction, Scheduler } from '#app/ports';
import { JmlError } from '#core/errors';
import type { WiringContext } from './bootstrap.ts';
import { ENV, required } from './config.ts';
import { once, type Lazy } from './lazy.ts';
import { FLEXIBLE_WINDOW_MINUTES, SCHEDULE_RETRY_POLICY, scheduledActionInput } from './schedules.ts';

const sdk = once(() => import('@aws-sdk/client-scheduler'));

export class ScheduleInvalid extends JmlError {}

export interface EventBridgeSchedulerOptions {
  client: Lazy<SchedulerClient>;
  groupName: string;
  /** Role Scheduler assumes to deliver (sqs:SendMessage on the queue, lambda:InvokeFunction on the action function). */
  roleArn: string;
  deadLetterArn: string;
  eventsQueueArn: string;
  actionFunctionArn: string;
  now?: () => number;
}

/** Schedule names: 1–64 of `[0-9a-zA-Z-_.]`. */
const NAME = /^[0-9A-Za-z_.-]{1,64}$/;


/** Kinds whose timing is exact; the others may fire within a small window (spreads load). */
const EXACT: ReadonlySet<ScheduledAction['kind']> = new Set(['start-run', 'approval-reminder']);

const MIN_LEAD_MS = 60_000;

/** `at(…)` expression in UTC, to the second. */
export function atExpression(at: Date): string {
  return `at(${at.toISOString().slice(0, 19)})`;
}

export class EventBridgeScheduler implements Scheduler {
  private readonly now: () => number;
  private readonly client: () => Promise<SchedulerClient>;

  constructor(private readonly options: EventBridgeSchedulerOptions) {
    this.now = options.now ?? Date.now;
    this.client = once(options.client);
  }

  /** The full schedule definition (also what UpdateSchedule needs: it replaces, not patches). */
  definition(name: string, at: Date, action: ScheduledAction): CreateScheduleCommandInput {
    if (!NAME.test(name)) throw new ScheduleInvalid(`schedule name must be 1-64 characters of 0-9 A-Z a-z - _ . (got ${name.length} characters)`);
    if (Number.isNaN(at.getTime())) throw new ScheduleInvalid(`schedule ${name}: time is not a valid date`);
    const when = new Date(Math.max(at.getTime(), this.now() + MIN_LEAD_MS));
    const o = this.options;
    const common = {
      RoleArn: o.roleArn,
      RetryPolicy: { ...SCHEDULE_RETRY_POLICY },
      DeadLetterConfig: { Arn: o.deadLetterArn },
    };
    let Target: CreateScheduleCommandInput['Target'];
    if (action.kind === 'start-run') {
      const { runId, employeeId } = action.payload as { runId?: unknown; employeeId?: unknown };
      if (typeof runId !== 'string' || !runId) throw new ScheduleInvalid(`schedule ${name}: start-run needs payload.runId`);
      if (typeof employeeId !== 'string' || !employeeId) throw new ScheduleInvalid(`schedule ${name}: start-run needs payload.employeeId`);
      Target = {
        ...common,
        Arn: o.eventsQueueArn,
        Input: JSON.stringify({ kind: 'scheduled-run', runId, employeeId }),
        SqsParameters: { MessageGroupId: employeeId },
      };
    } else {
      Target = { ...common, Arn: o.actionFunctionArn, Input: scheduledActionInput(name, action) };
    }
    return {
      Name: name,
      GroupName: o.groupName,
      ScheduleExpression: atExpression(when),
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: EXACT.has(action.kind) ? { Mode: 'OFF' } : { Mode: 'FLEXIBLE', MaximumWindowInMinutes: FLEXIBLE_WINDOW_MINUTES },
      ActionAfterCompletion: 'DELETE',
      State: 'ENABLED',
      Description: `jml ${action.kind}`,
      Target,
    };
  }

  async upsertOnce(name: string, at: Date, action: ScheduledAction): Promise<void> {
    const input = this.definition(name, at, action);
    const [{ CreateScheduleCommand, UpdateScheduleCommand }, client] = await Promise.all([sdk(), this.client()]);
    try {
      await client.send(new CreateScheduleCommand(input));
    } catch (e) {
      if ((e as { name?: string })?.name !== 'ConflictException') throw e;
      try {
        await client.send(new UpdateScheduleCommand(input));
      } catch (u) {
        // It fired and deleted itself between the two calls: create it afresh.
        if ((u as { name?: string })?.name !== 'ResourceNotFoundException') throw u;
        await client.send(new CreateScheduleCommand(input));
      }
    }
  }

  async delete(name: string): Promise<boolean> {
    const [{ DeleteScheduleCommand }, client] = await Promise.all([sdk(), this.client()]);
    try {
      await client.send(new DeleteScheduleCommand({ Name: name, GroupName: this.options.groupName }));
      return true;
    } catch (e) {
      if ((e as { name?: string })?.name === 'ResourceNotFoundException') return false;
      throw e;
    }
  }
}

/** Entry wiring: the schedule group, role, DLQ and the two targets (`JML_SCHEDULE_GROUP` and friends). */
export function wireScheduler({ config }: WiringContext): Scheduler {
  const s = required(config.scheduler, ENV.scheduleGroup, 'EventBridge Scheduler');
  return new EventBridgeScheduler({ client: async () => new (await sdk()).SchedulerClient({}), ...s });
}
