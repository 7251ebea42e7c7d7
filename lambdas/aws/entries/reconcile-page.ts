/** Lambda `reconcile-page`: Task `ReconcilePageFunctionArn`: one page of one target's accounts against the ledger. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';
import { wireConnectors } from '../connectors.aws.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { mailer: wireMailer, connectors: wireConnectors, ticketing: wireTicketing } });

export { reconcilePageHandler as handler } from '#handlers/reconcile-tasks';
