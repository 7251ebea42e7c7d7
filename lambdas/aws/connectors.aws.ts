/**
 * The connector registry in AWS: one connector per target the policy says jml provisions, built
 * from the function's configuration (URLs, tenant) and credentials in Secrets Manager.
 *
 * Only the Task Lambdas that talk to targets import this module (Plan, Converge, RecordFailure,
 * Reconcile, Close): the Okta SDK and the Graph client stay out of every other bundle. The IdP
 * kind is fixed at build time (`define` of `process.env.JML_IDP_KIND`), so an Okta deployment
 * does not carry the Graph client and an Entra one does not carry the Okta SDK; both are loaded
 * on the first invocation, not at module initialisation.
 *
 * Rotation: the registry re-reads the credentials (cached by `SecretValues` for a few minutes)
 * when it is older than the cache and rebuilds a connector whose credentials changed. `get()`
 * stays synchronous; the refresh runs in the background and the next call uses the new
 * connector.
 *
 * Credential shapes (docs/deploy.md): Okta `{ "token": "…" }` (an API token, SSWS);
 * Entra `{ "clientId": "…", "clientSecret": "…" }`; each SCIM app `{ "token": "…" }` (bearer).
 */
import { z } from 'zod';
import type { ConnectorRegistry } from '#app/ports';
import type { Connector } from '#connectors/connector';
import { PolicyViolation } from '#core/errors';
import type { Policy, PolicyTarget } from '#core/policy';
import { ENV, LambdaConfigError, type LambdaConfig, type ScimAppEnv } from './config.ts';
import type { WiringContext } from './bootstrap.ts';
import { DEFAULT_SECRET_TTL_MS, sharedSecretValues, type SecretValues } from './secrets.sm.ts';

export const oktaCredentialsSchema = z.object({ token: z.string().min(1) });
export const entraCredentialsSchema = z.object({ clientId: z.string().min(1), clientSecret: z.string().min(1) });
export const scimCredentialsSchema = z.object({ token: z.string().min(1) });

export interface ConnectorContext {
  config: LambdaConfig;
  policy: Policy;
  secrets: SecretValues;
  /** Background refresh failures (logged by the caller; the current connector keeps serving). */
  onRefreshError?: (target: string, error: unknown) => void;
  now?: () => number;
}

interface Built {
  connector: Connector;
  fingerprint: string;
}

type Builder = () => Promise<Built>;

/** Stable string of the credentials, compared to decide whether to rebuild (kept in memory only). */
const fingerprint = (creds: Record<string, string>) => JSON.stringify(Object.entries(creds).sort());

function idpBuilder(target: PolicyTarget, ctx: ConnectorContext): Builder {
  const idp = ctx.config.idp;
  if (!idp) throw new LambdaConfigError(`${ENV.idpKind}: not set, but the policy's IdP target ${target.name} needs a connector`);
  if (idp.kind !== target.kind) {
    throw new LambdaConfigError(`${ENV.idpKind}: is ${idp.kind} but the policy's IdP target ${target.name} is ${target.kind}`);
  }
  // `process.env.JML_IDP_KIND` is replaced by a literal at bundle time: the other branch and its
  // import are dropped from the bundle. Unbundled (tests), it is read from the environment.
  if (process.env.JML_IDP_KIND === 'okta' && idp.kind === 'okta') {
    return async () => {
      const creds = await ctx.secrets.json(idp.secretArn, `${target.name} credentials`, oktaCredentialsSchema);
      const { createOktaConnector } = await import('#connectors/okta.connector');
      return { connector: createOktaConnector({ name: target.name, orgUrl: idp.orgUrl, token: creds.token }), fingerprint: fingerprint(creds) };
    };
  }
  if (process.env.JML_IDP_KIND === 'entra' && idp.kind === 'entra') {
    return async () => {
      const creds = await ctx.secrets.json(idp.secretArn, `${target.name} credentials`, entraCredentialsSchema);
      const { createEntraConnector } = await import('#connectors/entra.connector');
      const connector = createEntraConnector({
        name: target.name,
        tenantId: idp.tenantId,
        clientId: creds.clientId,
        clientSecret: creds.clientSecret,
        domain: ctx.policy.document.company.emailDomain,
        ...(idp.usageLocation ? { usageLocation: idp.usageLocation } : {}),
      });
      return { connector, fingerprint: fingerprint(creds) };
    };
  }
  throw new LambdaConfigError(`${ENV.idpKind}: this bundle was built for another IdP than ${idp.kind}; redeploy`);
}

function scimBuilder(target: PolicyTarget, app: ScimAppEnv, ctx: ConnectorContext): Builder {
  return async () => {
    const creds = await ctx.secrets.json(app.secretArn, `${target.name} credentials`, scimCredentialsSchema);
    const { createScimConnector } = await import('#connectors/scim.connector');
    const connector = createScimConnector({ name: target.name, baseUrl: app.baseUrl, token: creds.token, ...(app.quirks ? { quirks: app.quirks } : {}) });
    return { connector, fingerprint: fingerprint(creds) };
  };
}

/** One builder per managed target; configuration gaps are reported all at once. */
function builders(ctx: ConnectorContext): Map<string, Builder> {
  const out = new Map<string, Builder>();
  const problems: string[] = [];
  const apps = new Map(ctx.config.scimApps.map((a) => [a.name, a]));
  for (const t of ctx.policy.managedTargets) {
    try {
      if (t.kind === 'scim') {
        const app = apps.get(t.name);
        if (!app) throw new LambdaConfigError(`${ENV.scimApps}: no entry for the policy's SCIM target ${t.name}`);
        out.set(t.name, scimBuilder(t, app, ctx));
      } else {
        if (t.name !== ctx.policy.idp.name) throw new LambdaConfigError(`target ${t.name}: a second ${t.kind} target is not supported`);
        out.set(t.name, idpBuilder(t, ctx));
      }
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (problems.length) throw new LambdaConfigError(`connectors: ${problems.join('; ')}`);
  return out;
}

/**
 * Builds every managed target's connector (credentials read in parallel) and returns the
 * registry. Throws LambdaConfigError for a configuration gap and SecretNotSet / SecretInvalid
 * for credentials that are missing or malformed — naming the target, never a value.
 */
export async function createConnectorRegistry(ctx: ConnectorContext): Promise<ConnectorRegistry & { refresh(): Promise<void> }> {
  const now = ctx.now ?? Date.now;
  const make = builders(ctx);
  const current = new Map<string, Built>();
  await Promise.all([...make].map(async ([name, build]) => current.set(name, await build())));
  let refreshedAt = now();
  let refreshing: Promise<void> | undefined;
  const ttlMs = DEFAULT_SECRET_TTL_MS;

  const refresh = async () => {
    await Promise.all(
      [...make].map(async ([name, build]) => {
        try {
          const next = await build();
          if (next.fingerprint !== current.get(name)?.fingerprint) current.set(name, next);
        } catch (e) {
          ctx.onRefreshError?.(name, e);
        }
      }),
    );
    refreshedAt = now();
  };

  return {
    get(target) {
      const built = current.get(target);
      if (!built) throw new PolicyViolation(`target ${target} is not managed by jml`);
      if (!refreshing && now() - refreshedAt > ttlMs) {
        refreshing = refresh().finally(() => {
          refreshing = undefined;
        });
      }
      return built.connector;
    },
    refresh,
  };
}

/** Entry wiring for the Task Lambdas that talk to targets. */
export function wireConnectors({ config, policy, logger }: WiringContext): Promise<ConnectorRegistry> {
  return createConnectorRegistry({
    config,
    policy,
    secrets: sharedSecretValues(),
    onRefreshError: (target, e) => logger.warn('connector credentials refresh failed; the current connector keeps serving', {
      target,
      errorName: (e as Error)?.name,
      errorMessage: (e as Error)?.message,
    }),
  });
}
