/** Lambda `okta-event-hook`: GET|POST /okta/events — Okta event hook (verification and drift signals). */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireQueue } from '../queue.sqs.ts';

installAwsDeps({ policyDocument, ports: { secrets: wireSecrets, queue: wireQueue } });

export { handler } from '#handlers/okta-event-hook';
