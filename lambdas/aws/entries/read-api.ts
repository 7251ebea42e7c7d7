/** Lambda `read-api`: GET /runs/{runId}, GET /runs, GET /exceptions — IAM-authorised read API. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';

installAwsDeps({ policyDocument });

export { handler } from '#handlers/read-api';
