/** Lambda `hris-webhook`: POST /hris/events — canonical HRIS webhook. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireQueue } from '../queue.sqs.ts';

installAwsDeps({ policyText, ports: { secrets: wireSecrets, queue: wireQueue } });

export { handler } from '#handlers/hris-webhook';
