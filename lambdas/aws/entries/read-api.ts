/** Lambda `read-api`: GET /runs/{runId}, GET /runs, GET /exceptions — IAM-authorised read API. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';

installAwsDeps({ policyText });

export { handler } from '#handlers/read-api';
