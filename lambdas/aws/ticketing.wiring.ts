/**
 * Entry wiring of the ticketing port: the deployment's ITSM (`JML_ITSM`, docs/itsm.md) with its
 * credential from Secrets Manager (`JML_ITSM_SECRET_ARN`, `{ "current", "previous"? }`), read on
 * the first ticket and cached like every secret. A deployment without an ITSM gets a port that
 * raises no ticket (exceptions still email their owner).
 */
import { createTicketing, type Ticketing } from '#connectors/itsm';
import type { WiringContext } from './bootstrap.ts';
import { rotatingSecretSchema, sharedSecretValues } from './secrets.sm.ts';

export function wireTicketing({ config }: WiringContext): Ticketing {
  const itsm = config.itsm;
  if (!itsm) return createTicketing(undefined, { secret: async () => [] });
  return createTicketing(itsm.config, {
    secret: async () => {
      const { current, previous } = await sharedSecretValues().json(itsm.secretArn, 'itsm', rotatingSecretSchema);
      return previous && previous !== current ? [current, previous] : [current];
    },
  });
}
