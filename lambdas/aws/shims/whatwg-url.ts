/**
 * Stands in for `whatwg-url` in the Lambda bundles (an esbuild alias, `lib/bundling.ts`).
 *
 * Its only importer is node-fetch 2 (under the Okta SDK), which takes `require('url').URL` when
 * Node has one — every Node since 10 — and whatwg-url's `URL` only otherwise
 * (`const URL = Url.URL || whatwgUrl.URL`). On the Lambda runtime whatwg-url is never used, yet
 * bundled it brings tr46's Unicode tables: 290 KiB of every bundle with the Okta connector. The
 * same `URL` is given here, so nothing changes even if it were used.
 */
export { URL } from 'node:url';
