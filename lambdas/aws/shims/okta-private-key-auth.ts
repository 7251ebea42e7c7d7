/**
 * Stands in for `node-jose`, `njwt`, `rasha` and `eckles` in the Lambda bundles (esbuild aliases,
 * `lib/bundling.ts`).
 *
 * The Okta SDK's `Http` requires `./dpop` (→ node-jose, `./jwt` → njwt, rasha, eckles) when it
 * loads, but calls it only for OAuth with a private key and DPoP (`Http.prepareRequest`, when the
 * client has an `oauth` with `isDPoP`); `./jwt`'s `makeJwt` is called only by the SDK's `OAuth`,
 * which the connector never loads. The jml connector authenticates with an SSWS API token, so
 * none of them runs — yet bundled they are ~470 KiB (node-forge, node-jose, pako…) of every
 * function that carries the connector. Every entry point those two files use is here, and each
 * throws one clear error instead of doing private-key cryptography.
 */
const MESSAGE = 'DPoP/OAuth private-key auth is not supported by the jml Okta connector: use an API token';

function unsupported(): never {
  throw new Error(MESSAGE);
}

// node-jose, as src/dpop.js uses it: jose.JWK.asKey, jose.JWS.createSign, jose.util.base64url.encode.
export const JWK = { asKey: unsupported };
export const JWS = { createSign: unsupported };
export const util = { base64url: { encode: unsupported } };
// njwt, as src/jwt.js uses it: nJwt.create.
export const create = unsupported;
// rasha and eckles, as src/jwt.js uses them: Rasha.import / Rasha.export, Eckles.import / Eckles.export.
export { unsupported as import, unsupported as export };
