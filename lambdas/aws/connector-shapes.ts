/**
 * What the use cases read of a connector without calling a target: its name, kind, capabilities
 * and which optional methods it has (`listChanges` makes a target delta-capable for the nightly
 * reconciliation; `createTemporaryAccessPass`, `listEntitlementMembers`). These depend only on
 * the kind, so they are known before the connector module — and its SDK, 3.2 MiB for Okta — is
 * loaded.
 *
 * Two uses:
 *  - `connectors.aws.ts` hands out connectors that answer these at once and load the real one on
 *    the first call (a function that only sometimes talks to a target does not pay for it);
 *  - `wireConnectorDescriptions` is the registry of the functions that only read these (the
 *    nightly reconciliation's start and finish): their bundles hold no connector module at all.
 *
 * `test/unit/aws-adapters.test.ts` checks this table against the real connectors, member by
 * member, so a connector gaining or losing an optional method cannot go unnoticed.
 */
import type { ConnectorRegistry } from '#app/ports';
import type { Connector } from '#connectors/connector';
import type { TargetKind } from '#core/access';
import { PolicyViolation } from '#core/errors';
import type { Policy, PolicyTarget } from '#core/policy';
import type { TargetCapabilities } from '#core/target-plan';
import { PortNotWired, type WiringContext } from './bootstrap.ts';

/** Methods every connector has (the Connector port). */
export const CONNECTOR_METHODS = [
  'findAccounts',
  'getAccount',
  'createAccount',
  'setStatus',
  'revokeSessions',
  'addEntitlement',
  'removeEntitlement',
  'deleteAccount',
  'listAccounts',
  'auditEvidence',
] as const satisfies ReadonlyArray<keyof Connector>;

/** Optional methods the use cases probe for (`typeof c.listChanges === 'function'`, …). */
export const OPTIONAL_CONNECTOR_METHODS = ['listEntitlementMembers', 'createTemporaryAccessPass', 'listChanges'] as const;
export type OptionalConnectorMethod = (typeof OPTIONAL_CONNECTOR_METHODS)[number];

export interface ConnectorShape {
  capabilities: TargetCapabilities;
  optional: readonly OptionalConnectorMethod[];
}

export const CONNECTOR_SHAPES: Record<TargetKind, ConnectorShape> = {
  okta: { capabilities: { suspend: true }, optional: ['listEntitlementMembers'] },
  entra: { capabilities: { suspend: false }, optional: ['createTemporaryAccessPass', 'listChanges'] },
  scim: { capabilities: { suspend: false }, optional: [] },
};

export type ConnectorMethod = (typeof CONNECTOR_METHODS)[number] | OptionalConnectorMethod;

/**
 * A connector with the target's name, kind and capabilities whose methods call `method(name)`
 * (which returns the implementation to run for this call).
 */
export function shapedConnector(target: PolicyTarget, method: (name: ConnectorMethod) => (...args: unknown[]) => Promise<unknown>): Connector {
  const shape = CONNECTOR_SHAPES[target.kind];
  const out: Record<string, unknown> = { name: target.name, kind: target.kind, capabilities: { ...shape.capabilities } };
  for (const m of [...CONNECTOR_METHODS, ...shape.optional]) {
    out[m] = (...args: unknown[]) => method(m)(...args);
  }
  return Object.freeze(out) as unknown as Connector;
}

/** The registry of a function that reads what targets are and never calls one. */
export function describeConnectors(policy: Policy): ConnectorRegistry {
  const described = new Map(
    policy.managedTargets.map((t) => [
      t.name,
      shapedConnector(t, (m) => async () => {
        throw new PortNotWired(`this function only reads what target ${t.name} is; calling its ${m}() needs the connectors wired (wireConnectors)`);
      }),
    ]),
  );
  return {
    get(target) {
      const c = described.get(target);
      if (!c) throw new PolicyViolation(`target ${target} is not managed by jml`);
      return c;
    },
  };
}

/** Entry wiring for the functions that only read the targets' kinds and capabilities. */
export async function wireConnectorDescriptions({ policy }: WiringContext): Promise<ConnectorRegistry> {
  return describeConnectors(policy);
}
