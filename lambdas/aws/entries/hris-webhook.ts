/** Lambda `hris-webhook`: POST /hris/events — canonical HRIS webhook. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireQueue } from '../queue.sqs.ts';

installAwsDeps({ policyDocument, ports: { secrets: wireSecrets, queue: wireQueue } });

export { handler } from '#handlers/hris-webhook';
