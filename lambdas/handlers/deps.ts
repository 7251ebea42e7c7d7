/**
 * Where the Lambda entry points get their `AppDeps`.
 *
 * Handlers are built by `create…Handler(depsProvider)` factories (tests and the local runtime
 * pass their own provider). The default `handler` export of each entry point asks this module,
 * so the process that hosts it installs a provider once at start-up: the AWS composition root
 * (SDK clients created once per container) or the local runtime. Until one is installed, an
 * invocation fails loudly rather than running against half-configured ports.
 */
import type { AppDeps } from '#app/ports';

export type DepsProvider = () => Promise<AppDeps>;

let provider: DepsProvider | undefined;
let built: Promise<AppDeps> | undefined;

/**
 * Installs the dependencies for this process: a ready `AppDeps`, or a function that builds them
 * (called once, on the first invocation; a failed build is retried on the next invocation).
 */
export function setDeps(deps: AppDeps | (() => AppDeps | Promise<AppDeps>)): void {
  const make = typeof deps === 'function' ? deps : () => deps;
  built = undefined;
  provider = () => {
    built ??= Promise.resolve()
      .then(make)
      .catch((err: unknown) => {
        built = undefined;
        throw err;
      });
    return built;
  };
}

/** The provider the default `handler` exports use. */
export const processDeps: DepsProvider = () => {
  if (!provider) {
    return Promise.reject(new Error('no AppDeps installed for this process: call setDeps() from the composition root before the first invocation'));
  }
  return provider();
};
