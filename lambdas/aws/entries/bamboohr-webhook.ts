/** Lambda `bamboohr-webhook`: POST /hris/bamboohr — BambooHR webhook. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireQueue } from '../queue.sqs.ts';

installAwsDeps({ policyText, ports: { secrets: wireSecrets, queue: wireQueue } });

export { bambooHrHandler as handler } from '#handlers/hris-webhook';
