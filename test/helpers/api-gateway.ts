/** API Gateway REST (v1, proxy integration) events as Lambda receives them, for handler tests. */
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';

export interface ApiRequest {
  method?: string;
  path: string;
  /** Route template (`/runs/{runId}`); defaults to the path. */
  resource?: string;
  headers?: Record<string, string>;
  /** Repeated headers, as API Gateway passes them in `multiValueHeaders`. */
  multiValueHeaders?: Record<string, string[]>;
  query?: Record<string, string>;
  pathParameters?: Record<string, string>;
  /** A string body is sent as is; bytes are sent base64-encoded (`isBase64Encoded: true`). */
  body?: string | Uint8Array | null;
  sourceIp?: string;
}

export function apiEvent(r: ApiRequest): APIGatewayProxyEvent {
  const headers = r.headers ?? {};
  const multi: Record<string, string[]> = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]]));
  for (const [k, v] of Object.entries(r.multiValueHeaders ?? {})) multi[k] = v;
  const binary = r.body instanceof Uint8Array;
  return {
    httpMethod: r.method ?? 'POST',
    path: r.path,
    resource: r.resource ?? r.path,
    headers: { ...headers, ...Object.fromEntries(Object.entries(r.multiValueHeaders ?? {}).map(([k, v]) => [k, v[v.length - 1]!])) },
    multiValueHeaders: multi,
    queryStringParameters: r.query ?? null,
    multiValueQueryStringParameters: r.query ? Object.fromEntries(Object.entries(r.query).map(([k, v]) => [k, [v]])) : null,
    pathParameters: r.pathParameters ?? null,
    stageVariables: null,
    body: r.body == null ? null : binary ? Buffer.from(r.body as Uint8Array).toString('base64') : (r.body as string),
    isBase64Encoded: binary,
    requestContext: {
      accountId: '123456789012',
      apiId: 'testapi',
      authorizer: null,
      protocol: 'HTTP/1.1',
      httpMethod: r.method ?? 'POST',
      identity: { sourceIp: r.sourceIp ?? '198.51.100.7', userAgent: 'test' } as APIGatewayProxyEvent['requestContext']['identity'],
      path: `/prod${r.path}`,
      stage: 'prod',
      requestId: randomUUID(),
      requestTimeEpoch: Date.now(),
      resourceId: 'res',
      resourcePath: r.resource ?? r.path,
    },
  };
}

/** The JSON body of a result (throws when it is not JSON). */
export function bodyOf<T = any>(result: APIGatewayProxyResult): T {
  return JSON.parse(result.body) as T;
}
