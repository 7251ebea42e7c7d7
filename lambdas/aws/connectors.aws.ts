/**
 * The connector registry in AWS: one connector per target the policy says jml provisions, built
 * from the function's configuration (URLs, tenant) and credentials in Secrets Manager.
 *
 * Only the functions that call targets import this module: the Okta SDK and the Graph client
 * stay out of every other bundle (the nightly reconciliation's start and finish only read what
 * the targets are: `connector-shapes.ts`). The IdP kind is fixed at build time (`define` of
 * `process.env.JML_IDP_KIND`), so an Okta deployment does not carry the Graph client and an
 * Entra one does not carry the Okta SDK.
 *
 * Nothing is loaded before it is used: a target's credentials are read and its connector module
 * (with its SDK) is loaded on the first call to that target's connector — not at module
 * initialisation, and not on an invocation that does not talk to that target (a queue message
 * that only starts a workflow, an approval page, …).
 *
 * Rotation: a call on a connector built longer ago than the secrets cache time re-reads its
 * credentials (cached by `SecretValues` for a few minutes) in the background and rebuilds the
 * connector if they changed; that call uses the current connector, the next ones the new one.
 *
 * Credential shapes (docs/deploy.md): Okta `{ "token": "…" }` (an API token, SSWS);
 * Entra `{ "clientId": "…", "clientSecret": "…" }`; each SCIM app `{ "token": "…" }` (bearer).
 */
import * as z from 'zod';
import type { ConnectorRegistry } from '#app/ports';
import type { Connector } from '#connectors/connector';
import { PolicyViolation } from '#core/errors';
import type { Policy, PolicyTarget } from '#core/policy';
import { ENV, LambdaConfigError, type LambdaConfig, type ScimAppEnv } from './config.ts';
import type { WiringContext } from './bootstrap.ts';
import { DEFAULT_SECRET_TTL_MS, sharedSecretValues, type SecretValues } from './secrets.sm.ts';
import { shapedConnector } from './connector-shapes.ts';

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

export interface LazyConnectorRegistry extends ConnectorRegistry {
  /** The target's connector itself, built first if no call has built it yet. */
  connector(target: string): Promise<Connector>;
  /** Re-reads the credentials of the connectors built so far and rebuilds those that changed. */
  refresh(): Promise<void>;
}

interface Slot {
  build: Builder;
  built?: Built;
  builtAt: number;
  building?: Promise<Built>;
  refreshing?: Promise<void>;
}

/**
 * The registry of the managed targets. Configuration gaps are reported here, at once
 * (LambdaConfigError); nothing is read or loaded yet. `get()` answers with a connector whose
 * name, kind and capabilities are known from the target's kind (`connector-shapes.ts`); its
 * first call reads the target's credentials and loads its connector module (and SDK), once,
 * shared by concurrent calls. Credentials that are missing or malformed fail that call with
 * SecretNotSet / SecretInvalid naming the target, never a value, and the next call tries again.
 */
export async function createConnectorRegistry(ctx: ConnectorContext): Promise<LazyConnectorRegistry> {
  const now = ctx.now ?? Date.now;
  const ttlMs = DEFAULT_SECRET_TTL_MS;
  const slots = new Map<string, Slot>([...builders(ctx)].map(([name, build]) => [name, { build, builtAt: 0 }]));
  const slotOf = (target: string): Slot => {
    const slot = slots.get(target);
    if (!slot) throw new PolicyViolation(`target ${target} is not managed by jml`);
    return slot;
  };

  const refreshOne = async (name: string, slot: Slot) => {
    try {
      const next = await slot.build();
      if (next.fingerprint !== slot.built?.fingerprint) slot.built = next;
    } catch (e) {
      ctx.onRefreshError?.(name, e);
    }
    slot.builtAt = now();
  };

  const ensure = async (name: string): Promise<Connector> => {
    const slot = slotOf(name);
    if (slot.built) {
      // Stale credentials: answer with the current connector, refresh in the background.
      if (!slot.refreshing && now() - slot.builtAt > ttlMs) {
        slot.refreshing = refreshOne(name, slot).finally(() => {
          slot.refreshing = undefined;
        });
      }
      return slot.built.connector;
    }
    slot.building ??= slot
      .build()
      .then((b) => {
        slot.built = b;
        slot.builtAt = now();
        return b;
      })
      .finally(() => {
        slot.building = undefined;
      });
    return (await slot.building).connector;
  };

  const handedOut = new Map(
    ctx.policy.managedTargets
      .filter((t) => slots.has(t.name))
      .map((t) => [
        t.name,
        shapedConnector(t, (m) => async (...args: unknown[]) => {
          const c = (await ensure(t.name)) as unknown as Record<string, unknown>;
          const f = c[m];
          if (typeof f !== 'function') throw new TypeError(`connector ${t.name} (${t.kind}) has no ${m}()`);
          return (f as (...a: unknown[]) => Promise<unknown>).apply(c, args);
        }),
      ]),
  );

  return {
    get(target) {
      slotOf(target);
      return handedOut.get(target)!;
    },
    connector: ensure,
    refresh: async () => {
      await Promise.all([...slots].filter(([, s]) => s.built).map(([name, s]) => refreshOne(name, s)));
    },
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
