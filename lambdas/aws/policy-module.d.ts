/**
 * `@jml/policy` is the deployment's access policy file, bundled as text at build time (esbuild
 * `--alias:@jml/policy=<policy file>` with the `.yaml` text loader, see lib/bundling.ts). A policy
 * change therefore ships as a deploy, like any release. Only the Lambda entry files import it.
 */
declare module '@jml/policy' {
  const text: string;
  export default text;
}
