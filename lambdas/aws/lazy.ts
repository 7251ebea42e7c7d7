/**
 * SDK clients loaded on first use. The AWS SDK is not bundled (the Lambda runtime provides it),
 * so `import('@aws-sdk/client-…')` stays a runtime import: a function that sends mail only on a
 * rare path does not load the SES client at every cold start. The ledger's DynamoDB client too is
 * loaded on the first ledger call (bootstrap.ts), not at module initialisation: that moves its
 * load into the first invocation rather than saving it (docs/performance.md, "Lambda bundles").
 * Each adapter's `sdk` is itself `once(() => import(…))`: an `import()` resolves its specifier
 * again on every call (module loader hooks included), which cost ~0.5 ms per ledger call.
 *
 * Adapters take either a ready client (tests, with aws-sdk-client-mock) or a factory, and call
 * the factory once.
 */
export type Lazy<T> = T | (() => Promise<T>);

export function once<T>(source: Lazy<T>): () => Promise<T> {
  if (typeof source !== 'function') {
    const ready = Promise.resolve(source);
    return () => ready;
  }
  let made: Promise<T> | undefined;
  return () => {
    made ??= (source as () => Promise<T>)().catch((e: unknown) => {
      made = undefined; // a failed load is tried again by the next call
      throw e;
    });
    return made;
  };
}
