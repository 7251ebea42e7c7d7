/** Lambda `reconcile-persons-page`: Task `ReconcilePersonsPageFunctionArn`: one page of the ledger's persons against the targets. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';
import { wireConnectors } from '../connectors.aws.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { mailer: wireMailer, connectors: wireConnectors, ticketing: wireTicketing } });

export { reconcilePersonsPageHandler as handler } from '#handlers/reconcile-tasks';
