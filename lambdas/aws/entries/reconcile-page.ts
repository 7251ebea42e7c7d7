/** Lambda `reconcile-page`: Task `ReconcilePageFunctionArn`: one page of one target's accounts against the ledger. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';
import { wireConnectors } from '../connectors.aws.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyText, ports: { mailer: wireMailer, connectors: wireConnectors, ticketing: wireTicketing } });

export { reconcilePageHandler as handler } from '#handlers/reconcile-tasks';
