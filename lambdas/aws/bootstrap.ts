/**
 * The AWS composition root: builds `AppDeps` once per container from the Lambda environment and
 * installs it with `setDeps` (handlers in `lambdas/handlers` never see AWS).
 *
 * Every function gets the ledger (DynamoDB), the bundled policy, metrics (EMF), a clock and the
 * public base URL. The other ports are wired only when the function's entry file asks for them
 * (`lambdas/aws/entries/<fn>.ts` passes the `wire…` functions it needs): its bundle then holds
 * only those adapters and SDK clients, and the stack binds only those resources (env var + IAM
 * grant) to it. A port the entry did not wire answers every call with an error naming the port,
 * so a missing binding is loud, never a silent no-op.
 *
 * SDK clients are created once per container (module scope) and reused; every one, the ledger's
 * DynamoDB client included, is loaded on its first use (lazy.ts), not at module initialisation.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { AppDeps, Clock } from '#app/ports';
import type { Logger } from '@aws-lambda-powertools/logger';
import { setDeps } from '#handlers/deps';
import { logger as handlerLogger } from '#handlers/logger';
import { compilePolicy, type Policy } from '#core/policy';
import { LambdaConfigError, loadLambdaConfig, type LambdaConfig } from './config.ts';
import { DynamoLedger, LEDGER_CLIENT_CONFIG } from './ledger.dynamodb.ts';
import { EmfMetrics } from './metrics.emf.ts';
import { once } from './lazy.ts';

/** What a `wire…` function gets: the checked configuration and the loaded policy. */
export interface WiringContext {
  config: LambdaConfig;
  policy: Policy;
  logger: Pick<Logger, 'warn' | 'error' | 'info'>;
  /** The AppDeps being built (resolves once they are): for ports that call back into use cases. */
  deps: () => Promise<AppDeps>;
}

/** The ports an entry may wire, beyond those every function has. */
export interface PortWiring {
  secrets?: (ctx: WiringContext) => AppDeps['secrets'];
  queue?: (ctx: WiringContext) => AppDeps['queue'];
  /** Step Functions: the workflow engine and the task-token callbacks (one client, one adapter). */
  workflows?: (ctx: WiringContext) => Pick<AppDeps, 'workflows' | 'callbacks'>;
  mailer?: (ctx: WiringContext) => AppDeps['mailer'];
  scheduler?: (ctx: WiringContext) => AppDeps['scheduler'];
  evidence?: (ctx: WiringContext) => AppDeps['evidence'];
  connectors?: (ctx: WiringContext) => Promise<AppDeps['connectors']>;
  /** ITSM tickets for exceptions (a port that raises none when no ITSM is configured). */
  ticketing?: (ctx: WiringContext) => NonNullable<AppDeps['ticketing']>;
}

export type PortName = keyof PortWiring;

export interface AwsDepsOptions {
  /** The access policy, parsed from its YAML at build time and bundled into the function (not yet validated: compiled here). */
  policyDocument: unknown;
  ports?: PortWiring;
  /** Defaults to `process.env`. */
  env?: Record<string, string | undefined>;
  /** Tests: a client on dynalite (or a mock) instead of DynamoDB (`LEDGER_CLIENT_CONFIG`). */
  dynamo?: DynamoDBClient;
  clock?: Clock;
  logger?: WiringContext['logger'];
}

/** A port this function was not given: every property access is a method that throws. */
export class PortNotWired extends LambdaConfigError {}

function unwired<T extends object>(port: PortName): T {
  const fail = () => {
    throw new PortNotWired(
      `this function has no ${port} port: wire it in its lambdas/aws/entries file and bind the resource in lib/functions.ts`,
    );
  };
  return new Proxy({} as T, {
    get: (_, prop) => (prop === 'then' ? undefined : fail),
  });
}

// Module scope: one DynamoDB client per container, loaded with the SDK on the first ledger call.
const sharedDynamo = once(async (): Promise<DynamoDBClient> => {
  const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
  return new DynamoDBClient(LEDGER_CLIENT_CONFIG);
});

/** Builds AppDeps from the environment: checks the configuration and the policy first. */
export async function createAwsDeps(options: AwsDepsOptions): Promise<AppDeps> {
  const config = loadLambdaConfig(options.env ?? process.env);
  const policy = compilePolicy(options.policyDocument);
  let resolveBuilt!: (deps: AppDeps) => void;
  const built = new Promise<AppDeps>((resolve) => {
    resolveBuilt = resolve;
  });
  const ctx: WiringContext = { config, policy, logger: options.logger ?? handlerLogger, deps: () => built };
  const wiring = options.ports ?? {};
  const flow = wiring.workflows?.(ctx);
  const appDeps: AppDeps = {
    ledger: new DynamoLedger({ client: options.dynamo ?? sharedDynamo, tableName: config.tableName }),
    policy: async () => policy,
    metrics: new EmfMetrics(),
    clock: options.clock ?? { now: () => new Date() },
    publicBaseUrl: config.publicBaseUrl,
    secrets: wiring.secrets?.(ctx) ?? unwired('secrets'),
    queue: wiring.queue?.(ctx) ?? unwired('queue'),
    workflows: flow?.workflows ?? unwired('workflows'),
    callbacks: flow?.callbacks ?? unwired('workflows'),
    mailer: wiring.mailer?.(ctx) ?? unwired('mailer'),
    scheduler: wiring.scheduler?.(ctx) ?? unwired('scheduler'),
    evidence: wiring.evidence?.(ctx) ?? unwired('evidence'),
    connectors: wiring.connectors ? await wiring.connectors(ctx) : unwired('connectors'),
    ticketing: wiring.ticketing?.(ctx) ?? unwired<NonNullable<AppDeps['ticketing']>>('ticketing'),
  };
  resolveBuilt(appDeps);
  return appDeps;
}

/**
 * Installs the AWS dependencies for this process. Called once by each entry file at module
 * initialisation; the deps are built on the first invocation (a failed build — a missing
 * secret, say — is retried on the next one).
 */
export function installAwsDeps(options: AwsDepsOptions): void {
  setDeps(() => createAwsDeps(options));
}
