/** Lambda `reconcile-persons-page`: Task `ReconcilePersonsPageFunctionArn`: one page of the ledger's persons against the targets. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';
import { wireConnectors } from '../connectors.aws.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyText, ports: { mailer: wireMailer, connectors: wireConnectors, ticketing: wireTicketing } });

export { reconcilePersonsPageHandler as handler } from '#handlers/reconcile-tasks';
