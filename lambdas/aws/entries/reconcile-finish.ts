/** Lambda `reconcile-finish`: Task `FinishReconciliationFunctionArn`: the reconciliation report as evidence, drift KPI (also the failure path). */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';
import { wireEvidence } from '../evidence.wiring.ts';
import { wireConnectorDescriptions } from '../connector-shapes.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { mailer: wireMailer, evidence: wireEvidence, connectors: wireConnectorDescriptions, ticketing: wireTicketing } });

export { finishReconciliationHandler as handler } from '#handlers/reconcile-tasks';
