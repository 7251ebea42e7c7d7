/**
 * Step Functions, locally: runs the same `statemachines/*.asl.json` files with
 * aws-local-stepfunctions, every Task mapped to the same handler code the Lambdas run.
 *
 * - Resources are `${XFunctionArn}` placeholders (the stack's definitionSubstitutions); each Task
 *   state is overridden by name with the handler registered for its placeholder.
 * - `lambda:invoke.waitForTaskToken` Tasks get the `{ FunctionName, Payload }` wrapper: the
 *   handler is called with the Payload (a fresh task token injected, as Step Functions does per
 *   task) and the state waits until `succeed` / `fail` is called with that token — what
 *   SendTaskSuccess / SendTaskFailure do in AWS. A token whose task timed out answers `gone`.
 * - A Wait until a timestamp (`Timestamp`, `TimestampPath`) waits until that moment by the
 *   runtime's clock (`now`), which tests move forward: the library would measure it against the
 *   machine's time (and a wait past 24.8 days overflows Node's timer and ends at once). It runs as
 *   a Task of the engine's own under the same state name, re-reading the clock at least once a
 *   second.
 * - The execution's path (states entered, retries, catches) is kept for tests and the CLI.
 */
import '#local/polyfills';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import type { TaskCallbacks, WorkflowEngine, WorkflowName } from '#app/ports';
import { withInvocationSignal } from '#connectors/invocation';

export type TaskFn = (input: any) => Promise<unknown>;

export interface LocalWorkflowOptions {
  /** Folder with the `*.asl.json` files. */
  dir: string;
  /** Handler per substitution key (`PlanFunctionArn` → the plan handler). */
  handlers: Record<string, TaskFn>;
  /** Wait between retries in ms (default: the definition's own intervals). */
  retryIntervalMs?: number;
  /** Called when an execution ends (for logs and the run's liveness). */
  onEnd?: (name: string, outcome: ExecutionRecord) => void;
  /** The runtime's clock (epoch ms) a Wait until a timestamp is measured against (default: the machine's). */
  now?: () => number;
  /** How long a later Task waits at most for a timed-out attempt's handler to return (default 30 s). */
  timedOutAttemptGraceMs?: number;
}

export interface PathEvent {
  type: string;
  state?: string;
  error?: string;
  at: number;
}

export interface ExecutionRecord {
  name: string;
  workflow: WorkflowName;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  startedAt: number;
  endedAt?: number;
  output?: unknown;
  error?: { name: string; message: string };
  path: PathEvent[];
  done: Promise<void>;
  abort(): void;
}

interface PendingTask {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer?: NodeJS.Timeout;
}

const PLACEHOLDER = /^\$\{([A-Za-z0-9]+)\}$/;

type StateDef = Record<string, any>;

/** Every state of a definition, nested Map/Parallel states included, by name. */
function allStates(states: Record<string, StateDef>, out: Array<[string, StateDef]> = []): Array<[string, StateDef]> {
  for (const [name, state] of Object.entries(states)) {
    out.push([name, state]);
    const processor = state.ItemProcessor ?? state.Iterator;
    if (processor?.States) allStates(processor.States, out);
    for (const branch of state.Branches ?? []) allStates(branch.States, out);
  }
  return out;
}

/** A Wait that ends at a moment rather than after a number of seconds. */
const waitsUntil = (state: StateDef) => state.Type === 'Wait' && (state.Timestamp !== undefined || state.TimestampPath !== undefined);
const LOCAL_WAIT_ARN = 'arn:aws:lambda:local:000000000000:function:jml-local-wait-until';
/** The longest a wait sleeps before it reads the clock again. */
const WAIT_RECHECK_MS = 1000;

/** The value at a JSONPath of plain field names (`$.slots.restrictAt`): the only kind the definitions use for a Wait. */
function atPath(input: unknown, path: string): unknown {
  if (!/^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(path)) throw new Error(`TimestampPath ${path}: only $.field.field paths are supported locally`);
  return path
    .slice(2)
    .split('.')
    .reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), input);
}

export function placeholdersOf(definition: { States: Record<string, StateDef> }): Set<string> {
  const keys = new Set<string>();
  const text = JSON.stringify(definition);
  for (const m of text.matchAll(/\$\{([A-Za-z0-9]+)\}/g)) keys.add(m[1]!);
  return keys;
}

/**
 * Called before every Task handler runs (fault injection in tests: a handler that throws here
 * fails the way a crashed Lambda invocation does, before any of its work is done).
 */
export type TaskFaultHook = (task: { execution: string; state: string; input: unknown }) => void;

/**
 * Runs a Task's handler as one invocation that ends when the state times out: the engine raises
 * States.Timeout and may retry at that moment, and in AWS the Lambda of the first attempt has
 * been stopped by then (its timeout is shorter than the Task's). Here the handler would go on in
 * the same process, so its connector calls are refused from then on (`#connectors/invocation`),
 * and every later Task of the execution — its retry, or another state converging the same target
 * after a Catch (the joiner's ExecuteMissing) — waits until the attempt has stopped (`attempts`):
 * a request it had in flight is answered or dropped before the next Task reads the target, as a
 * stopped Lambda's is in AWS long before the Retry's interval ends (a few milliseconds here).
 */
async function untilTimeout<T>(
  timeoutSeconds: unknown,
  fn: () => Promise<T>,
  { attempts, execution, graceMs, notStopped }: { attempts: Map<string, Set<Attempt>>; execution: string; graceMs: number; notStopped: (n: number) => void },
): Promise<T> {
  const seconds = Number(timeoutSeconds);
  // The engine's own timer for this state started as it called us: our deadline is its deadline.
  const deadline = Date.now() + seconds * 1000;
  // Attempts past their deadline have timed out for the engine (it may not have told us yet: its
  // timer and ours fire in the same millisecond); attempts still within theirs are Map siblings.
  // One whose handler never returns (waiting on something that never answers) is waited for
  // `graceMs` at most: the execution goes on, and its path says so.
  const stale = [...(attempts.get(execution) ?? [])].filter((a) => a.deadline - DEADLINE_SLACK_MS <= Date.now());
  if (stale.length) {
    let grace: NodeJS.Timeout | undefined;
    const left = await Promise.race([
      Promise.all(stale.map((a) => a.stopped)).then(() => 0),
      new Promise<number>((r) => (grace = setTimeout(() => r(stale.length), graceMs))),
    ]).finally(() => clearTimeout(grace));
    if (left) notStopped(left);
  }
  if (!Number.isFinite(seconds) || seconds <= 0) return fn();
  const ended = new AbortController();
  const timer = setTimeout(() => ended.abort(), Math.max(0, deadline - Date.now()));
  timer.unref();
  const run = withInvocationSignal(ended.signal, fn).finally(() => clearTimeout(timer));
  const attempt: Attempt = { deadline, stopped: run.then(() => undefined, () => undefined) };
  const running = attempts.get(execution) ?? new Set<Attempt>();
  attempts.set(execution, running.add(attempt));
  void attempt.stopped.then(() => {
    running.delete(attempt);
    if (running.size === 0 && attempts.get(execution) === running) attempts.delete(execution);
  });
  return run;
}

/** A Task attempt in flight: when the engine times it out, and when its handler has returned. */
interface Attempt {
  deadline: number;
  stopped: Promise<void>;
}

/** How long a later Task waits at most for a timed-out attempt's handler to return. */
const TIMED_OUT_ATTEMPT_GRACE_MS = 30_000;

/** Timers of the same deadline fire within a few milliseconds of each other. */
const DEADLINE_SLACK_MS = 25;

function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

export class LocalWorkflows implements WorkflowEngine, TaskCallbacks {
  /** Fault injection: see TaskFaultHook. */
  beforeTask?: TaskFaultHook;
  private readonly machines = new Map<WorkflowName, { definition: any; machine: StateMachine }>();
  private readonly executions = new Map<string, ExecutionRecord>();
  /** Resolved (and replaced) each time an execution ends: what `nextEnd()` hands out. */
  private ended = signal();
  private readonly pending = new Map<string, PendingTask>();
  /** Timed Task attempts still running, by execution: those past their deadline are waited for (see untilTimeout). */
  private readonly attempts = new Map<string, Set<Attempt>>();

  constructor(private readonly options: LocalWorkflowOptions) {}

  private load(workflow: WorkflowName) {
    let entry = this.machines.get(workflow);
    if (!entry) {
      const definition = JSON.parse(readFileSync(join(this.options.dir, `${workflow}.asl.json`), 'utf8'));
      // Substitute every placeholder with a syntactically valid ARN; the overrides do the work.
      const text = JSON.stringify(definition).replace(
        /\$\{([A-Za-z0-9]+)\}/g,
        (_, key: string) => `arn:aws:lambda:local:000000000000:function:jml-${key.replace(/FunctionArn$/, '')}`,
      );
      const substituted = JSON.parse(text);
      for (const [, state] of allStates(substituted.States)) {
        if (!waitsUntil(state)) continue;
        const { Next, End, Comment } = state;
        for (const k of Object.keys(state)) delete state[k];
        Object.assign(state, { Type: 'Task', Resource: LOCAL_WAIT_ARN, ...(Comment ? { Comment } : {}), ...(Next ? { Next } : { End }) });
      }
      entry = { definition, machine: new StateMachine(substituted, { validationOptions: { checkPaths: true } }) };
      this.machines.set(workflow, entry);
    }
    return entry;
  }

  private overrides(definition: any, execution: string) {
    const taskResourceLocalHandlers: Record<string, (input: any) => Promise<any>> = {};
    const retryIntervalOverrides: Record<string, number | number[]> = {};
    for (const [name, state] of allStates(definition.States)) {
      if (waitsUntil(state)) {
        taskResourceLocalHandlers[name] = async (input) => {
          const at = Date.parse(String(state.Timestamp ?? atPath(input, state.TimestampPath)));
          if (Number.isNaN(at)) throw Object.assign(new Error(`${name}: the timestamp to wait for is not a date`), { name: 'States.Runtime' });
          const now = this.options.now ?? Date.now;
          // Until the moment, or until the execution is stopped (the library then drops this Task).
          const running = () => (this.executions.get(execution)?.status ?? 'RUNNING') === 'RUNNING';
          for (let left = at - now(); left > 0 && running(); left = at - now()) {
            await new Promise((r) => setTimeout(r, Math.min(left, WAIT_RECHECK_MS)));
          }
          return input;
        };
        continue;
      }
      if (state.Retry && this.options.retryIntervalMs !== undefined) {
        retryIntervalOverrides[name] = state.Retry.map(() => this.options.retryIntervalMs!);
      }
      if (state.Type !== 'Task') continue;
      const direct = PLACEHOLDER.exec(state.Resource ?? '');
      if (direct) {
        const fn = this.handler(direct[1]!, name);
        taskResourceLocalHandlers[name] = async (input) => {
          this.beforeTask?.({ execution, state: name, input });
          return (await untilTimeout(state.TimeoutSeconds, () => fn(input), this.attemptsOf(execution, name))) ?? null;
        };
        continue;
      }
      if (String(state.Resource).startsWith('arn:aws:states:::lambda:invoke')) {
        const key = PLACEHOLDER.exec(state.Parameters?.FunctionName ?? '')?.[1];
        if (!key) throw new Error(`state ${name}: lambda:invoke without a \${…FunctionArn} FunctionName`);
        const fn = this.handler(key, name);
        const waits = String(state.Resource).endsWith('.waitForTaskToken');
        taskResourceLocalHandlers[name] = async (input: { Payload?: Record<string, unknown> }) => {
          const payload = { ...(input.Payload ?? {}) };
          this.beforeTask?.({ execution, state: name, input: payload });
          if (!waits) return { Payload: (await untilTimeout(state.TimeoutSeconds, () => fn(payload), this.attemptsOf(execution, name))) ?? null };
          const token = `local-${randomUUID()}`;
          payload.taskToken = token;
          const result = new Promise((resolve, reject) => this.pending.set(token, { resolve, reject }));
          const timeoutSeconds = Number(payload.timeoutSeconds);
          if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
            // The state machine raises States.Timeout at the same moment; the token is then gone.
            const timer = setTimeout(() => this.pending.delete(token), timeoutSeconds * 1000);
            timer.unref();
            this.pending.get(token)!.timer = timer;
          }
          try {
            await fn(payload);
          } catch (e) {
            this.pending.delete(token);
            throw e;
          }
          return result;
        };
      }
    }
    return { taskResourceLocalHandlers, retryIntervalOverrides };
  }

  /** What `untilTimeout` needs of the execution's attempts; a Task that went on without one waiting records it on the path. */
  private attemptsOf(execution: string, state: string) {
    return {
      attempts: this.attempts,
      execution,
      graceMs: this.options.timedOutAttemptGraceMs ?? TIMED_OUT_ATTEMPT_GRACE_MS,
      notStopped: (n: number) =>
        this.executions.get(execution)?.path.push({ type: 'TimedOutAttemptNotStopped', state, error: `${n} timed-out attempt(s) still running`, at: Date.now() }),
    };
  }

  private handler(key: string, state: string): TaskFn {
    const fn = this.options.handlers[key];
    if (!fn) throw new Error(`state ${state}: no local handler for \${${key}}`);
    return fn;
  }

  async start(workflow: WorkflowName, name: string, input: unknown): Promise<{ executionId: string; alreadyStarted: boolean }> {
    const executionId = `arn:aws:states:local:000000000000:execution:jml-${workflow}:${name}`;
    if (this.executions.has(name)) return { executionId, alreadyStarted: true };
    const { definition, machine } = this.load(workflow);
    const execution = machine.run(input as any, {
      overrides: this.overrides(definition, name),
      noThrowOnAbort: true,
      // A Task.Token must exist for `$$.Task.Token` to resolve; each waiting task gets its own below.
      context: { Execution: { Id: executionId, Name: name, Input: input as any, StartTime: new Date().toISOString() }, Task: { Token: 'local-context' } } as any,
    });
    const record: ExecutionRecord = {
      name,
      workflow,
      status: 'RUNNING',
      startedAt: Date.now(),
      path: [],
      done: Promise.resolve(),
      abort: () => execution.abort(),
    };
    this.executions.set(name, record);
    const logs = (async () => {
      for await (const ev of execution.eventLogs as AsyncGenerator<any>) {
        record.path.push({
          type: ev.type,
          ...(ev.state?.name ? { state: ev.state.name } : {}),
          ...(ev.Error ? { error: ev.Error } : {}),
          at: ev.timestamp ?? Date.now(),
        });
      }
    })();
    record.done = execution.result
      .then((output) => {
        record.status = record.status === 'ABORTED' ? 'ABORTED' : 'SUCCEEDED';
        record.output = output;
      })
      .catch((e: Error) => {
        record.status = 'FAILED';
        record.error = { name: e.name, message: e.message };
      })
      .then(() => logs.catch(() => undefined))
      .finally(() => {
        record.endedAt = Date.now();
        this.options.onEnd?.(name, record);
        const ended = this.ended;
        this.ended = signal();
        ended.resolve();
      });
    return { executionId, alreadyStarted: false };
  }

  async stop(name: string): Promise<void> {
    const record = this.executions.get(name);
    if (!record || record.status !== 'RUNNING') return;
    record.status = 'ABORTED';
    record.abort();
  }

  async succeed(taskToken: string, output: unknown): Promise<'ok' | 'gone'> {
    const task = this.take(taskToken);
    if (!task) return 'gone';
    task.resolve(output);
    return 'ok';
  }

  async fail(taskToken: string, error: string, cause: string): Promise<'ok' | 'gone'> {
    const task = this.take(taskToken);
    if (!task) return 'gone';
    const err = new Error(cause);
    err.name = error;
    task.reject(err);
    return 'ok';
  }

  private take(token: string): PendingTask | undefined {
    const task = this.pending.get(token);
    if (!task) return undefined;
    this.pending.delete(token);
    if (task.timer) clearTimeout(task.timer);
    return task;
  }

  execution(name: string): ExecutionRecord | undefined {
    return this.executions.get(name);
  }

  /** Resolves when the execution has ended (succeeded, failed or aborted). */
  async wait(name: string, timeoutMs = 60_000): Promise<ExecutionRecord> {
    const record = this.executions.get(name);
    if (!record) throw new Error(`no local execution named ${name}`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      record.done,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`execution ${name} still running after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    return record;
  }

  /** Names of the states entered, in order (the path a test asserts on). */
  statesEntered(name: string): string[] {
    return (this.executions.get(name)?.path ?? []).filter((e) => e.type === 'StateEntered').map((e) => e.state!);
  }

  /**
   * Resolves when the next execution ends, whichever it is. One promise shared by every waiter
   * and replaced at each end, so a loop that waits on it attaches nothing to the executions
   * themselves (waiting on each execution's `done` every few ms piles reactions onto promises
   * that stay pending for as long as a run waits: gigabytes in a 1,000-run burst).
   */
  nextEnd(): Promise<void> {
    return this.ended.promise;
  }

  running(): ExecutionRecord[] {
    return [...this.executions.values()].filter((e) => e.status === 'RUNNING');
  }
}
