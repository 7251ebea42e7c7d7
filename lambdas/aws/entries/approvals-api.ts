/** Lambda `approvals-api`: GET|HEAD|POST /approvals/{id} — confirmation page and decision (SendTaskSuccess / SendTaskFailure). */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireWorkflows } from '../workflows.sfn.ts';

installAwsDeps({ policyText, ports: { secrets: wireSecrets, workflows: wireWorkflows } });

export { handler } from '#handlers/approvals-api';
