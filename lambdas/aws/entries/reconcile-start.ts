/** Lambda `reconcile-start`: Task `StartReconciliationFunctionArn`: opens the nightly reconciliation, lists the targets to page through. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireConnectors } from '../connectors.aws.ts';

installAwsDeps({ policyText, ports: { connectors: wireConnectors } });

export { startReconciliationHandler as handler } from '#handlers/reconcile-tasks';
