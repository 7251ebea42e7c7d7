/**
 * Turns zod issues into messages a person can act on: `worker.employeeId: required`,
 * `eventType: must be one of hire, change, …`. Never a stack trace, never the rejected value
 * (it may be personal data).
 */
import type { z } from 'zod';
import { ValidationError } from './errors.ts';

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return (issue as { input?: unknown }).input === undefined ? 'required' : `expected ${issue.expected}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'unrecognized_keys':
      return `unknown field(s) ${issue.keys.join(', ')}`;
    case 'too_big':
      return issue.origin === 'string' ? `at most ${issue.maximum} characters` : `at most ${issue.maximum}`;
    case 'too_small':
      return issue.origin === 'string' && issue.minimum === 1 ? 'must not be empty' : `at least ${issue.minimum}`;
    default:
      return issue.message;
  }
}

export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = [...issue.path];
    if (issue.code === 'unrecognized_keys') return `${formatPath(path)}: ${describeIssue(issue)}`;
    return `${formatPath(path)}: ${describeIssue(issue)}`;
  });
}

/** Parses or throws a ValidationError whose message lists every problem by field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, prefix?: string): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = formatIssues(result.error);
  throw new ValidationError(prefix ? issues.map((i) => `${prefix}: ${i}`) : issues);
}
