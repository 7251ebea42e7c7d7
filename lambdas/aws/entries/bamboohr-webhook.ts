/** Lambda `bamboohr-webhook`: POST /hris/bamboohr — BambooHR webhook. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireQueue } from '../queue.sqs.ts';

installAwsDeps({ policyDocument, ports: { secrets: wireSecrets, queue: wireQueue } });

export { bambooHrHandler as handler } from '#handlers/hris-webhook';
