/** Lambda `exception-grants`: POST /exception-grants, GET /exception-grants/{grantId}, POST /exceptions/{exceptionId}/resolve — IAM-authorised operator API. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireScheduler } from '../scheduler.eventbridge.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { secrets: wireSecrets, mailer: wireMailer, scheduler: wireScheduler, ticketing: wireTicketing } });

export { handler } from '#handlers/exception-grants';
