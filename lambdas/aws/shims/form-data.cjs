/**
 * Stands in for `form-data` in the Lambda bundles (an esbuild alias, `lib/bundling.ts`).
 *
 * The Okta SDK's `Http` requires it when it loads, for one method, `postFormDataFile` (multipart
 * uploads: logos, certificates), which the jml Okta connector never calls. Bundled, form-data
 * brings mime-db and its helpers: ~165 KiB of every function that carries the connector.
 * CommonJS, because `Http` calls the module itself (`new FormData()`): that call throws here.
 */
'use strict';

module.exports = class FormData {
  constructor() {
    throw new Error('multipart uploads (Http.postFormDataFile) are not supported by the jml Okta connector');
  }
};
