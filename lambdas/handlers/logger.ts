/** One Powertools Logger per process; handlers append run keys, never payloads or secrets. */
import { Logger } from '@aws-lambda-powertools/logger';

export const logger = new Logger({ serviceName: 'jml' });
