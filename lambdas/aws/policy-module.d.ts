/**
 * `@jml/policy` is the deployment's access policy, parsed from its YAML file at build time into
 * JSON (lib/bundling.ts: `policyModuleFile`, bundled through esbuild's
 * `--alias:@jml/policy=<that file>`), so no function carries a YAML parser. A policy change
 * therefore ships as a deploy, like any release. Only the Lambda entry files import it; the
 * function validates and compiles it when it starts (`compilePolicy`).
 */
declare module '@jml/policy' {
  const document: unknown;
  export default document;
}
