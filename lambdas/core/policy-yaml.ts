/**
 * The policy file's YAML, parsed. Kept apart from `policy.ts` so the `yaml` parser stays out of
 * the Lambda bundles: they import the policy already parsed at build time (lib/bundling.ts) and
 * only compile it.
 */
import { parseDocument } from 'yaml';
import { ValidationError } from './errors.ts';
import { compilePolicy, type Policy } from './policy.ts';

/** The plain data of a policy YAML text (not yet validated); YAML syntax errors carry their line. */
export function parsePolicyYaml(yamlText: string): unknown {
  const doc = parseDocument(yamlText, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length) {
    throw new ValidationError(doc.errors.map((e) => `yaml: ${e.message.split('\n')[0]}`));
  }
  return doc.toJS();
}

/** Parses YAML text and compiles it. */
export function loadPolicyText(yamlText: string): Policy {
  return compilePolicy(parsePolicyYaml(yamlText));
}
