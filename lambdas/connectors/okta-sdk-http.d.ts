/**
 * Types for the parts of `@okta/okta-sdk-nodejs` v8 the Okta connector uses: its hand-written
 * HTTP layer, loaded by deep path so that the generated API classes (and every model they
 * import) stay out of the Lambda bundles. The SDK ships no declarations for these files; only
 * what the connector calls is declared.
 */

declare module '@okta/okta-sdk-nodejs/src/request-executor.js' {
  import { EventEmitter } from 'node:events';

  /** What `Http` hands to the executor: node-fetch's `(url, init)` in one object. */
  export interface ExecutorRequest {
    url: string;
    method: string;
    headers: Record<string, string>;
    body?: string;
    [option: string]: unknown;
  }

  /** The part of node-fetch's Response that the SDK and the connector read. */
  export interface FetchResponse {
    status: number;
    url: string;
    headers: { get(name: string): string | null };
    text(): Promise<string>;
    json(): Promise<unknown>;
  }

  /** The SDK's HTTP seam: every request goes through `fetch` (node-fetch 2 underneath). */
  export default class RequestExecutor extends EventEmitter {
    fetch(request: ExecutorRequest): Promise<FetchResponse>;
  }
}

declare module '@okta/okta-sdk-nodejs/src/http.js' {
  import type RequestExecutor from '@okta/okta-sdk-nodejs/src/request-executor.js';
  import type { FetchResponse } from '@okta/okta-sdk-nodejs/src/request-executor.js';

  export interface HttpRequest {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
  }

  /**
   * The SDK's fetch wrapper: default headers, the executor, and `errorFilter`, which turns a
   * non-2xx answer into an `OktaApiError` (JSON body: `status`, `errorCode`, `errorSummary`,
   * `errorCauses`, `headers`) or an `HttpError` (`status`, `headers`).
   */
  export class Http {
    constructor(config: { requestExecutor: RequestExecutor; cacheMiddleware: null; httpsProxy?: string });
    defaultHeaders: Record<string, string>;
    http(uri: string, request?: HttpRequest, context?: { isCollection?: boolean }): Promise<FetchResponse>;
  }
}

declare module '@okta/okta-sdk-nodejs/src/collection.js' {
  import type { Http, HttpRequest } from '@okta/okta-sdk-nodejs/src/http.js';

  /** Link-header paging: each `getNextPage()` fetches `nextUri` and moves it to the `rel="next"` link. */
  export class Collection {
    constructor(httpApi: Http, uri: string, factory: object, request?: HttpRequest);
    /** The next page's URL; undefined once the last page was read. */
    nextUri: string | undefined;
    /** The next page's parsed JSON body (an array for every Okta list). */
    getNextPage(): Promise<unknown>;
  }
}
