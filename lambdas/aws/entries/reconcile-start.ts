/** Lambda `reconcile-start`: Task `StartReconciliationFunctionArn`: opens the nightly reconciliation, lists the targets to page through. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireConnectorDescriptions } from '../connector-shapes.ts';

installAwsDeps({ policyDocument, ports: { connectors: wireConnectorDescriptions } });

export { startReconciliationHandler as handler } from '#handlers/reconcile-tasks';
