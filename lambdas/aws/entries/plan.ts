/** Lambda `plan`: Task `PlanFunctionArn`: desired state vs every target's actual state. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireConnectors } from '../connectors.aws.ts';

installAwsDeps({ policyDocument, ports: { connectors: wireConnectors } });

export { plan as handler } from '#handlers/run-tasks';
