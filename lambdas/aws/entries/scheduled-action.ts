/** Lambda `scheduled-action`: Target of the EventBridge Scheduler schedules other than start-run (reminders, nightly reconcile, …). */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireWorkflows } from '../workflows.sfn.ts';

installAwsDeps({ policyText, ports: { secrets: wireSecrets, mailer: wireMailer, workflows: wireWorkflows } });

export { handler } from '../scheduled-action.ts';
