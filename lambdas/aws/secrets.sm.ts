/**
 * Secrets on AWS Secrets Manager.
 *
 * Values are fetched on first use and kept for a few minutes (one cache per container, shared by
 * every caller in it; concurrent first uses share one request). A rotation is therefore picked up
 * within `ttlMs` without a redeploy, and a Lambda that never needs a secret never reads it.
 *
 * Shapes (JSON, documented in docs/deploy.md):
 *  - the port's secrets (HRIS webhook, BambooHR, Okta hook, link signing):
 *    `{ "current": "…", "previous": "…" }` — `previous` only during a rotation; `get()` returns
 *    `[current, previous]`, callers verify against each and sign with the first;
 *  - connector credentials are read with `json(arn, schema)` (see `connectors.aws.ts`).
 * Error messages name the secret and the field, never a value.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import * as z from 'zod';
import type { SecretName, Secrets } from '#app/ports';
import { JmlError } from '#core/errors';
import { formatIssues } from '#core/validation';
import type { WiringContext } from './bootstrap.ts';
import { ENV } from './config.ts';
import { once, type Lazy } from './lazy.ts';

const sdk = once(() => import('@aws-sdk/client-secrets-manager'));

/** The secret exists but nobody has put a value in it yet (the stack creates some empty). */
export class SecretNotSet extends JmlError {}

/** The secret's value is not the JSON shape this use needs (the message names the field). */
export class SecretInvalid extends JmlError {}

export const DEFAULT_SECRET_TTL_MS = 5 * 60_000;

export interface SecretValuesOptions {
  client: Lazy<SecretsManagerClient>;
  ttlMs?: number;
  now?: () => number;
}

interface Entry {
  value: Promise<string>;
  fetchedAt: number;
}

/** A short-lived cache of secret strings by ARN. */
export class SecretValues {
  private readonly cache = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly client: () => Promise<SecretsManagerClient>;

  constructor(options: SecretValuesOptions) {
    this.ttlMs = options.ttlMs ?? DEFAULT_SECRET_TTL_MS;
    this.now = options.now ?? Date.now;
    this.client = once(options.client);
  }

  /** The secret's current string; `label` names it in errors. */
  string(arn: string, label: string): Promise<string> {
    const hit = this.cache.get(arn);
    if (hit && this.now() - hit.fetchedAt < this.ttlMs) return hit.value;
    const value = this.fetch(arn, label);
    const entry: Entry = { value, fetchedAt: this.now() };
    this.cache.set(arn, entry);
    // A failed read is not remembered: the next caller asks again.
    value.catch(() => {
      if (this.cache.get(arn) === entry) this.cache.delete(arn);
    });
    return value;
  }

  /** The secret parsed as JSON and checked against `schema`. */
  async json<S extends z.ZodType>(arn: string, label: string, schema: S): Promise<z.infer<S>> {
    const text = await this.string(arn, label);
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new SecretInvalid(`secret ${label}: the value is not JSON (expected ${describe(schema)})`);
    }
    const parsed = schema.safeParse(data);
    if (!parsed.success) throw new SecretInvalid(`secret ${label}: ${formatIssues(parsed.error).join('; ')}`);
    return parsed.data;
  }

  private async fetch(arn: string, label: string): Promise<string> {
    const [{ GetSecretValueCommand }, client] = await Promise.all([sdk(), this.client()]);
    try {
      const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
      if (out.SecretString === undefined || out.SecretString === '') {
        throw new SecretNotSet(`secret ${label} (${arn}) has no string value: put one as described in docs/deploy.md`);
      }
      return out.SecretString;
    } catch (e) {
      // An empty secret has no AWSCURRENT version: Secrets Manager answers ResourceNotFoundException.
      if ((e as { name?: string })?.name === 'ResourceNotFoundException') {
        throw new SecretNotSet(`secret ${label} (${arn}) has no value yet: put one as described in docs/deploy.md`, { cause: e });
      }
      throw e;
    }
  }
}

function describe(schema: z.ZodType): string {
  const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
  return shape ? `an object with ${Object.keys(shape).join(', ')}` : 'a JSON value';
}

/** `{ current, previous? }`: the rotation shape of the port's secrets. */
export const rotatingSecretSchema = z.object({
  current: z.string().min(1),
  previous: z.string().min(1).optional(),
});

export interface SecretsManagerSecretsOptions {
  values: SecretValues;
  /** Secret ARN per name (only the ones this function is bound to). */
  arns: Partial<Record<SecretName, string>>;
  /** Variable that would carry each ARN, for the "not bound" message. */
  variables: Record<SecretName, string>;
}

export class SecretsManagerSecrets implements Secrets {
  constructor(private readonly options: SecretsManagerSecretsOptions) {}

  async get(name: SecretName): Promise<string[]> {
    const arn = this.options.arns[name];
    if (!arn) {
      throw new SecretNotSet(`secret ${name}: ${this.options.variables[name]} is not set, this function is not bound to it`);
    }
    const { current, previous } = await this.options.values.json(arn, name, rotatingSecretSchema);
    return previous && previous !== current ? [current, previous] : [current];
  }
}

// Module scope: one client and one value cache per container, shared by the Secrets port and the
// connector credentials.
let shared: SecretValues | undefined;
export function sharedSecretValues(): SecretValues {
  shared ??= new SecretValues({ client: async () => new (await sdk()).SecretsManagerClient({}) });
  return shared;
}

/** Entry wiring: the secrets this function is bound to (`JML_SECRET_*_ARN`). */
export function wireSecrets({ config }: WiringContext): Secrets {
  return new SecretsManagerSecrets({ values: sharedSecretValues(), arns: config.secrets, variables: ENV.secretArn });
}
