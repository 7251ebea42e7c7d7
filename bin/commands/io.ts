/** Small helpers shared by the CLI commands: reading inputs and reporting errors. */
import { readFileSync } from 'node:fs';
import { parse as parseCsv } from 'csv-parse/sync';
import { parse as parseYaml } from 'yaml';
import { ValidationError } from '#core/errors';

export const DEFAULT_POLICY = 'config/access-policy.yaml';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : code ?? String(e)}`);
  }
}

/** JSON or YAML, by content. */
export function readStructured(path: string, what: string): unknown {
  const text = readText(path, what);
  try {
    return path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new UsageError(`${what} ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** A roster: a JSON array of workers, or a CSV with a header row of worker field names. */
export function readRoster(path: string): Array<Record<string, unknown>> {
  if (path.endsWith('.csv')) {
    const rows = parseCsv(readText(path, 'roster'), { columns: true, skip_empty_lines: true, trim: true }) as Array<Record<string, string>>;
    return rows.map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== '')));
  }
  const data = readStructured(path, 'roster');
  const list = Array.isArray(data) ? data : (data as { workers?: unknown })?.workers;
  if (!Array.isArray(list)) throw new UsageError(`roster ${path} must be a JSON array of workers (or { "workers": [...] }) or a CSV`);
  return list as Array<Record<string, unknown>>;
}

export function reportError(e: unknown): number {
  if (e instanceof ValidationError) {
    console.error('error: invalid input');
    for (const issue of e.issues) console.error(`  - ${issue}`);
    return 1;
  }
  if (e instanceof UsageError || (e as Error).name === 'RuntimeUnavailable' || (e as Error).name === 'StackError') {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  console.error(`error: ${(e as Error).message ?? String(e)}`);
  return 1;
}
