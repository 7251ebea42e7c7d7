/**
 * API Gateway (REST, v1 proxy integration), locally: turns an HTTP request into the same
 * `APIGatewayProxyEvent` a Lambda receives in AWS, and its result back into a response.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';

export interface RequestLike {
  method: string;
  /** Path with query string, e.g. `/approvals/a-1?t=…`. */
  url: string;
  headers?: Record<string, string | string[] | undefined>;
  body?: string | Buffer;
  sourceIp?: string;
  /** Path parameters of the matched route. */
  pathParameters?: Record<string, string>;
  resource?: string;
}

const TEXT_TYPES = /^(application\/(json|x-www-form-urlencoded|scim\+json)|text\/)/i;

export function toApiGatewayEvent(req: RequestLike): APIGatewayProxyEvent {
  const url = new URL(req.url, 'http://127.0.0.1');
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(req.headers ?? {})) {
    if (v === undefined) continue;
    const list = Array.isArray(v) ? v : [v];
    headers[k] = list.join(', ');
    multiValueHeaders[k] = list;
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) {
    query[k] = v;
    (multiQuery[k] ??= []).push(v);
  }
  const raw = req.body === undefined ? null : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
  const contentType = headers['content-type'] ?? headers['Content-Type'] ?? '';
  const binary = raw !== null && raw.length > 0 && !TEXT_TYPES.test(contentType);
  return {
    httpMethod: req.method.toUpperCase(),
    path: url.pathname,
    resource: req.resource ?? url.pathname,
    headers,
    multiValueHeaders,
    queryStringParameters: Object.keys(query).length ? query : null,
    multiValueQueryStringParameters: Object.keys(multiQuery).length ? multiQuery : null,
    pathParameters: req.pathParameters ?? null,
    stageVariables: null,
    body: raw === null ? null : binary ? raw.toString('base64') : raw.toString('utf8'),
    isBase64Encoded: binary,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: null,
      protocol: 'HTTP/1.1',
      httpMethod: req.method.toUpperCase(),
      path: url.pathname,
      stage: 'local',
      requestId: crypto.randomUUID(),
      requestTimeEpoch: Date.now(),
      resourceId: 'local',
      resourcePath: req.resource ?? url.pathname,
      identity: {
        sourceIp: req.sourceIp ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? headers['User-Agent'] ?? null,
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        user: null,
        userArn: null,
      },
    },
  } as APIGatewayProxyEvent;
}

export function resultBody(result: APIGatewayProxyResult): Buffer {
  return result.isBase64Encoded ? Buffer.from(result.body, 'base64') : Buffer.from(result.body ?? '', 'utf8');
}
