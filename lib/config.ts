/**
 * Deployment configuration, checked at synth time with zod: which IdP (and its URL / tenant),
 * the SCIM apps, the mail sender, evidence retention, time zone, alarm email, API limits.
 *
 * Read from CDK context — `-c config=<name>` selects `config/deploy.<name>.json`, or a whole
 * object under the context key `jml` — and cross-checked against the access policy the
 * functions will carry (the IdP kind, one SCIM app per SCIM target). Every problem is reported
 * at once, each naming the file and the field.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import type { Policy } from '#core/policy';
import { loadPolicyText } from '#core/policy-yaml';
import { ItsmConfigSchema } from '#connectors/itsm';
import { formatIssues } from '#core/validation';
import { REPO_ROOT } from './bundling.ts';

/** Context keys. */
export const CONFIG_CONTEXT = { name: 'config', inline: 'jml' } as const;

const https = z.url({ protocol: /^https$/, message: 'must be an https:// URL' });
const email = z.email({ message: 'must be an email address' });
const timeZone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be an IANA time zone such as Europe/London' },
);
const cidr = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/(\d|[12]\d|3[0-2])$|^[0-9a-fA-F:]+\/\d{1,3}$/, 'must be a CIDR block such as 203.0.113.0/24');

/** CloudWatch Logs retention values (days) that the service accepts. */
export const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

export const deployConfigSchema = z
  .object({
    /** CloudFormation stack name (also the prefix of secret names). */
    stackName: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,31}$/, 'up to 32 letters, digits and hyphens, starting with a letter').default('Jml'),
    /** Optional pinning of account / region; without it the stack is environment-agnostic. */
    env: z
      .object({
        account: z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id').optional(),
        region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1').optional(),
      })
      .strict()
      .default({}),
    /** The access policy the functions carry (repo-relative). */
    policyFile: z.string().min(1).default('config/access-policy.yaml'),
    idp: z.discriminatedUnion('kind', [
      z
        .object({
          kind: z.literal('okta'),
          orgUrl: https,
          /** Okta user ids of jml's own API service account: their changes are not drift. */
          selfActorIds: z.array(z.string().min(1)).default([]),
        })
        .strict(),
      z
        .object({
          kind: z.literal('entra'),
          tenantId: z.string().regex(/^[0-9a-f-]{36}$|^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/, 'must be a tenant id (GUID) or a verified domain'),
          usageLocation: z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166 two-letter country code').optional(),
        })
        .strict(),
    ]),
    scimApps: z
      .array(
        z
          .object({
            name: z.string().min(1),
            baseUrl: https,
            quirks: z.object({ deleteOnDeactivate: z.boolean().optional(), putOnly: z.boolean().optional() }).strict().optional(),
          })
          .strict(),
      )
      .default([]),
    mail: z
      .object({
        /** Sender of approval and exception mails. */
        from: email,
        /** Verify the sender's whole domain (DKIM records to publish) or just the address. */
        identity: z.enum(['email', 'domain']).default('email'),
      })
      .strict(),
    /** ITSM tickets for exceptions (docs/itsm.md); absent: exceptions only email their owner. */
    itsm: ItsmConfigSchema.superRefine((v, ctx) => {
      const [field, url] = v.system === 'jira' ? ['baseUrl', v.baseUrl] : v.system === 'servicenow' ? ['instanceUrl', v.instanceUrl] : ['url', v.url];
      if (!url.startsWith('https://')) ctx.addIssue({ code: 'custom', path: [field], message: 'must be an https:// URL' });
    }).optional(),
    /** Public base URL of the API for approval links (a custom domain); default: the API's own URL. */
    publicBaseUrl: https.optional(),
    evidence: z
      .object({
        retentionDays: z.number().int().min(1).max(36_500),
        lockMode: z.enum(['GOVERNANCE', 'COMPLIANCE']),
      })
      .strict(),
    /** Time zone of the nightly reconciliation schedule; default: the policy's company time zone. */
    timeZone: timeZone.optional(),
    nightlyReconcile: z
      .object({ hour: z.number().int().min(0).max(23).default(2), minute: z.number().int().min(0).max(59).default(0) })
      .strict()
      .default({ hour: 2, minute: 0 }),
    alarms: z.object({ email }).strict(),
    api: z
      .object({
        throttle: z
          .object({ rateLimit: z.number().positive().default(50), burstLimit: z.number().int().positive().default(100) })
          .strict()
          .default({ rateLimit: 50, burstLimit: 100 }),
        /** Source addresses allowed to call the HRIS routes (resource policy); empty: anyone with the signing secret. */
        hrisAllowedCidrs: z.array(cidr).default([]),
        /** Attach a WAF web ACL (rate limit per IP, known bad inputs). */
        waf: z.boolean().default(false),
      })
      .strict()
      .default({ throttle: { rateLimit: 50, burstLimit: 100 }, hrisAllowedCidrs: [], waf: false }),
    logRetentionDays: z
      .number()
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), `must be one of ${LOG_RETENTION_DAYS.join(', ')}`)
      .default(365),
  })
  .strict();

export type DeployConfig = z.infer<typeof deployConfigSchema>;

/** A deployment configuration the stack cannot be built from. */
export class DeployConfigError extends Error {
  override readonly name = 'DeployConfigError';
}

export interface LoadedConfig {
  config: DeployConfig;
  policy: Policy;
  /** Where it came from, for messages (`config/deploy.prod.json` or `context jml`). */
  source: string;
}

/** Parses a config object and checks it against the policy file it names. */
export function parseDeployConfig(raw: unknown, source: string): LoadedConfig {
  const parsed = deployConfigSchema.safeParse(raw);
  if (!parsed.success) throw new DeployConfigError(`${source}: ${formatIssues(parsed.error).join('; ')}`);
  const config = parsed.data;
  const policyPath = resolve(REPO_ROOT, config.policyFile);
  if (!existsSync(policyPath)) throw new DeployConfigError(`${source}: policyFile: ${config.policyFile} does not exist`);
  let policy: Policy;
  try {
    policy = loadPolicyText(readFileSync(policyPath, 'utf8'));
  } catch (e) {
    throw new DeployConfigError(`${source}: policyFile ${config.policyFile} is not a valid policy: ${(e as Error).message}`);
  }
  const problems: string[] = [];
  if (policy.idp.kind !== config.idp.kind) {
    problems.push(`idp.kind: is ${config.idp.kind} but the policy's IdP target ${policy.idp.name} is ${policy.idp.kind}`);
  }
  const scimTargets = policy.managedTargets.filter((t) => t.kind === 'scim').map((t) => t.name);
  const apps = config.scimApps.map((a) => a.name);
  for (const t of scimTargets) if (!apps.includes(t)) problems.push(`scimApps: no entry for the policy's SCIM target ${t}`);
  for (const a of apps) if (!scimTargets.includes(a)) problems.push(`scimApps: ${a} is not a SCIM target jml provisions in the policy`);
  const dup = apps.find((a, i) => apps.indexOf(a) !== i);
  if (dup) problems.push(`scimApps: ${dup} is listed twice`);
  if (problems.length) throw new DeployConfigError(`${source}: ${problems.join('; ')}`);
  return { config, policy, source };
}

/** Reads `config/deploy.<name>.json` (repo-relative). */
export function readDeployConfigFile(name: string): LoadedConfig {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new DeployConfigError(`context ${CONFIG_CONTEXT.name}: "${name}" is not a config name (letters, digits, - and _)`);
  const file = `config/deploy.${name}.json`;
  const path = resolve(REPO_ROOT, file);
  if (!existsSync(path)) {
    throw new DeployConfigError(`${file} does not exist: copy config/deploy.example.json to it and fill it in, or pass -c ${CONFIG_CONTEXT.name}=<name>`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new DeployConfigError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseDeployConfig(raw, file);
}

/** The configuration from CDK context: an inline object (`jml`) wins over a named file (`config`). */
export function loadDeployConfig(tryGetContext: (key: string) => unknown): LoadedConfig {
  const inline = tryGetContext(CONFIG_CONTEXT.inline);
  if (inline !== undefined) {
    const raw = typeof inline === 'string' ? safeJson(inline) : inline;
    return parseDeployConfig(raw, `context ${CONFIG_CONTEXT.inline}`);
  }
  const name = tryGetContext(CONFIG_CONTEXT.name);
  if (typeof name !== 'string' || !name) {
    throw new DeployConfigError(`no deployment configuration: pass -c ${CONFIG_CONTEXT.name}=<name> to read config/deploy.<name>.json`);
  }
  return readDeployConfigFile(name);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new DeployConfigError(`context ${CONFIG_CONTEXT.inline}: not valid JSON`);
  }
}
