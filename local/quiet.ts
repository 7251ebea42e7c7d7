/**
 * Console hygiene for the local runtime, the demo and the CLI (imported first, before any
 * handler module creates its logger): handler logs at ERROR unless POWERTOOLS_LOG_LEVEL says
 * otherwise, and the AWS SDK's notice that future releases will need Node 22 shown once per
 * machine rather than on every command (the code runs on Node 20 and on Lambda's newest runtime).
 */
process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
const emit = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const name = typeof warning === 'string' ? (typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string })?.type) : warning.name;
  if (name === 'NodeVersionSupportWarning') return;
  (emit as (...a: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
export {};
