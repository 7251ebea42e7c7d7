/** Lambda `okta-event-hook`: GET|POST /okta/events — Okta event hook (verification and drift signals). */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireQueue } from '../queue.sqs.ts';

installAwsDeps({ policyText, ports: { secrets: wireSecrets, queue: wireQueue } });

export { handler } from '#handlers/okta-event-hook';
