/**
 * The Lambda environment: one list of variable names (the CDK `bind…` helpers set exactly these)
 * and one zod schema, read once per container by the composition root (`bootstrap.ts`).
 *
 * Only `JML_TABLE_NAME` and `JML_PUBLIC_BASE_URL` are set on every function. The rest come with
 * a binding (queue, secrets, state machines, …) and only on the functions that use them, together
 * with their IAM grant; a port whose variable is missing fails on first use with a message that
 * names the variable, instead of calling AWS with half a configuration.
 */
import * as z from 'zod';
import { SECRET_NAMES, WORKFLOWS, type SecretName, type WorkflowName } from '#app/ports';
import { formatIssues } from '#core/validation';
import { ItsmConfigSchema, type ItsmConfig } from '#connectors/itsm';

/** Environment variable names (SCREAMING_SNAKE), shared with the stack in `lib/`. */
export const ENV = {
  tableName: 'JML_TABLE_NAME',
  publicBaseUrl: 'JML_PUBLIC_BASE_URL',
  evidenceBucket: 'JML_EVIDENCE_BUCKET',
  evidenceLockMode: 'JML_EVIDENCE_LOCK_MODE',
  evidenceRetainDays: 'JML_EVIDENCE_RETAIN_DAYS',
  /** The account that owns the evidence bucket (`ExpectedBucketOwner` on every S3 call). */
  evidenceBucketOwner: 'JML_EVIDENCE_BUCKET_OWNER',
  eventsQueueUrl: 'JML_EVENTS_QUEUE_URL',
  stateMachineArn: {
    joiner: 'JML_SFN_JOINER_ARN',
    mover: 'JML_SFN_MOVER_ARN',
    leaver: 'JML_SFN_LEAVER_ARN',
    leave: 'JML_SFN_LEAVE_ARN',
    reconcile: 'JML_SFN_RECONCILE_ARN',
  },
  secretArn: {
    hrisWebhook: 'JML_SECRET_HRIS_WEBHOOK_ARN',
    bambooHr: 'JML_SECRET_BAMBOOHR_ARN',
    oktaHook: 'JML_SECRET_OKTA_HOOK_ARN',
    linkSigning: 'JML_SECRET_LINK_SIGNING_ARN',
  },
  idpKind: 'JML_IDP_KIND',
  idpSecretArn: 'JML_IDP_SECRET_ARN',
  oktaOrgUrl: 'JML_OKTA_ORG_URL',
  entraTenantId: 'JML_ENTRA_TENANT_ID',
  entraUsageLocation: 'JML_ENTRA_USAGE_LOCATION',
  /** Okta user ids whose own changes are not drift (jml's API service account); read by the Okta hook handler. */
  oktaSelfActorIds: 'JML_OKTA_SELF_ACTOR_IDS',
  /** JSON: `[{ name, baseUrl, secretArn, quirks? }]`. */
  scimApps: 'JML_SCIM_APPS',
  mailFrom: 'JML_MAIL_FROM',
  sesConfigurationSet: 'JML_SES_CONFIGURATION_SET',
  scheduleGroup: 'JML_SCHEDULE_GROUP',
  schedulerRoleArn: 'JML_SCHEDULER_ROLE_ARN',
  schedulerDlqArn: 'JML_SCHEDULER_DLQ_ARN',
  eventsQueueArn: 'JML_EVENTS_QUEUE_ARN',
  scheduledActionFunctionArn: 'JML_SCHEDULED_ACTION_FUNCTION_ARN',
  /** JSON: the deployment's ITSM (docs/itsm.md); absent: exceptions raise no ticket. */
  itsm: 'JML_ITSM',
  itsmSecretArn: 'JML_ITSM_SECRET_ARN',
} as const;

// Every workflow and every secret has its variable (a compile error otherwise).
ENV.stateMachineArn satisfies Record<WorkflowName, string>;
ENV.secretArn satisfies Record<SecretName, string>;

/** A bad or missing Lambda environment. The message names every offending variable. */
export class LambdaConfigError extends Error {
  override readonly name = 'LambdaConfigError';
}

const nonEmpty = z.string().trim().min(1);
const arn = (service: string) => z.string().regex(new RegExp(`^arn:aws[a-z-]*:${service}:`), `must be an ${service} ARN`);
const httpsUrl = z.url({ protocol: /^https$/ });

export const scimAppEnvSchema = z.object({
  name: nonEmpty,
  baseUrl: httpsUrl,
  secretArn: arn('secretsmanager'),
  /** Checked by the SCIM connector's own schema when it is built (`deleteOnDeactivate`, `putOnly`). */
  quirks: z.record(z.string(), z.boolean()).optional(),
});
export type ScimAppEnv = z.infer<typeof scimAppEnvSchema>;

const jsonText = z.string().transform((text, ctx) => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not valid JSON' });
    return z.NEVER;
  }
});
const jsonArray = <T extends z.ZodType>(item: T) => jsonText.pipe(z.array(item));

/** The variables as a zod object: every key is the variable's own name, so issues name it. */
export const lambdaEnvSchema = z.object({
  [ENV.tableName]: nonEmpty,
  [ENV.publicBaseUrl]: z.url({ protocol: /^https?$/ }),
  [ENV.evidenceBucket]: nonEmpty.optional(),
  [ENV.evidenceLockMode]: z.enum(['GOVERNANCE', 'COMPLIANCE']).optional(),
  [ENV.evidenceRetainDays]: z.coerce.number().int().positive().optional(),
  [ENV.evidenceBucketOwner]: z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id').optional(),
  [ENV.eventsQueueUrl]: httpsUrl.optional(),
  [ENV.stateMachineArn.joiner]: arn('states').optional(),
  [ENV.stateMachineArn.mover]: arn('states').optional(),
  [ENV.stateMachineArn.leaver]: arn('states').optional(),
  [ENV.stateMachineArn.leave]: arn('states').optional(),
  [ENV.stateMachineArn.reconcile]: arn('states').optional(),
  [ENV.secretArn.hrisWebhook]: arn('secretsmanager').optional(),
  [ENV.secretArn.bambooHr]: arn('secretsmanager').optional(),
  [ENV.secretArn.oktaHook]: arn('secretsmanager').optional(),
  [ENV.secretArn.linkSigning]: arn('secretsmanager').optional(),
  [ENV.idpKind]: z.enum(['okta', 'entra']).optional(),
  [ENV.idpSecretArn]: arn('secretsmanager').optional(),
  [ENV.oktaOrgUrl]: httpsUrl.optional(),
  [ENV.entraTenantId]: nonEmpty.optional(),
  [ENV.entraUsageLocation]: z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166 two-letter country code').optional(),
  [ENV.scimApps]: jsonArray(scimAppEnvSchema).optional(),
  [ENV.mailFrom]: z.email().optional(),
  [ENV.sesConfigurationSet]: nonEmpty.optional(),
  [ENV.scheduleGroup]: nonEmpty.optional(),
  [ENV.schedulerRoleArn]: arn('iam').optional(),
  [ENV.schedulerDlqArn]: arn('sqs').optional(),
  [ENV.eventsQueueArn]: arn('sqs').optional(),
  [ENV.scheduledActionFunctionArn]: arn('lambda').optional(),
  [ENV.itsm]: jsonText.pipe(ItsmConfigSchema).optional(),
  [ENV.itsmSecretArn]: arn('secretsmanager').optional(),
});

export interface LambdaConfig {
  tableName: string;
  publicBaseUrl: string;
  evidence?: { bucket: string; objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; retainDays: number }; expectedBucketOwner?: string };
  eventsQueueUrl?: string;
  stateMachines: Partial<Record<WorkflowName, string>>;
  secrets: Partial<Record<SecretName, string>>;
  idp?:
    | { kind: 'okta'; secretArn: string; orgUrl: string }
    | { kind: 'entra'; secretArn: string; tenantId: string; usageLocation?: string };
  scimApps: ScimAppEnv[];
  mail?: { from: string; configurationSet?: string };
  scheduler?: {
    groupName: string;
    roleArn: string;
    deadLetterArn: string;
    eventsQueueArn: string;
    actionFunctionArn: string;
  };
  itsm?: { config: ItsmConfig; secretArn: string };
}

type Env = Record<string, string | undefined>;

/** Reads and checks the environment once; throws LambdaConfigError naming each bad variable. */
export function loadLambdaConfig(env: Env = process.env): LambdaConfig {
  // Unset and empty are the same thing for a Lambda environment variable.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = lambdaEnvSchema.safeParse(present);
  if (!parsed.success) throw new LambdaConfigError(`Lambda environment: ${formatIssues(parsed.error).join('; ')}`);
  const e = parsed.data;
  const problems: string[] = [];
  const together = (what: string, names: string[]) => {
    const set = names.filter((n) => present[n] !== undefined);
    if (set.length && set.length < names.length) {
      problems.push(`${names.filter((n) => present[n] === undefined).join(', ')}: required with ${set.join(', ')} (${what})`);
    }
    return set.length === names.length;
  };

  const config: LambdaConfig = {
    tableName: e[ENV.tableName],
    publicBaseUrl: e[ENV.publicBaseUrl],
    stateMachines: {},
    secrets: {},
    scimApps: e[ENV.scimApps] ?? [],
  };
  const bucket = e[ENV.evidenceBucket];
  if (bucket) {
    const mode = e[ENV.evidenceLockMode];
    const days = e[ENV.evidenceRetainDays];
    together('evidence Object Lock', [ENV.evidenceLockMode, ENV.evidenceRetainDays]);
    config.evidence = {
      bucket,
      ...(mode && days ? { objectLock: { mode, retainDays: days } } : {}),
      ...(e[ENV.evidenceBucketOwner] ? { expectedBucketOwner: e[ENV.evidenceBucketOwner] } : {}),
    };
  }
  const queueUrl = e[ENV.eventsQueueUrl];
  if (queueUrl) config.eventsQueueUrl = queueUrl;
  for (const w of WORKFLOWS) {
    const v = e[ENV.stateMachineArn[w]];
    if (v) config.stateMachines[w] = v;
  }
  for (const s of SECRET_NAMES) {
    const v = e[ENV.secretArn[s]];
    if (v) config.secrets[s] = v;
  }
  const kind = e[ENV.idpKind];
  if (kind === 'okta' && together('Okta connector', [ENV.idpKind, ENV.idpSecretArn, ENV.oktaOrgUrl])) {
    config.idp = { kind, secretArn: e[ENV.idpSecretArn]!, orgUrl: e[ENV.oktaOrgUrl]! };
  } else if (kind === 'entra' && together('Entra connector', [ENV.idpKind, ENV.idpSecretArn, ENV.entraTenantId])) {
    const usageLocation = e[ENV.entraUsageLocation];
    config.idp = { kind, secretArn: e[ENV.idpSecretArn]!, tenantId: e[ENV.entraTenantId]!, ...(usageLocation ? { usageLocation } : {}) };
  } else if (!kind && present[ENV.idpSecretArn] !== undefined) {
    problems.push(`${ENV.idpKind}: required with ${ENV.idpSecretArn} (okta or entra)`);
  }
  const from = e[ENV.mailFrom];
  if (from) {
    config.mail = { from, ...(e[ENV.sesConfigurationSet] ? { configurationSet: e[ENV.sesConfigurationSet] } : {}) };
  }
  const schedulerVars = [ENV.scheduleGroup, ENV.schedulerRoleArn, ENV.schedulerDlqArn, ENV.eventsQueueArn, ENV.scheduledActionFunctionArn];
  if (together('EventBridge Scheduler', schedulerVars)) {
    config.scheduler = {
      groupName: e[ENV.scheduleGroup]!,
      roleArn: e[ENV.schedulerRoleArn]!,
      deadLetterArn: e[ENV.schedulerDlqArn]!,
      eventsQueueArn: e[ENV.eventsQueueArn]!,
      actionFunctionArn: e[ENV.scheduledActionFunctionArn]!,
    };
  }
  if (together('ITSM tickets', [ENV.itsm, ENV.itsmSecretArn])) config.itsm = { config: e[ENV.itsm]!, secretArn: e[ENV.itsmSecretArn]! };
  if (problems.length) throw new LambdaConfigError(`Lambda environment: ${problems.join('; ')}`);
  return config;
}

/**
 * The value a port needs, or a LambdaConfigError that names the variable and says what it is
 * for: the function was deployed without that binding.
 */
export function required<T>(value: T | undefined, variable: string, what: string): T {
  if (value === undefined) {
    throw new LambdaConfigError(`${variable} is not set: this function is not bound to ${what} (see lib/jml-function.ts bind… helpers)`);
  }
  return value;
}
