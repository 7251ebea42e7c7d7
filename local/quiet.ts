/**
 * Console hygiene for the local runtime, the demo, the CLI and the benchmarks (imported first,
 * before any handler module creates its logger): handler logs at ERROR unless
 * POWERTOOLS_LOG_LEVEL says otherwise, and the AWS SDK's notice that releases after January 2027
 * will need Node 22 switched off with the SDK's own setting (the code runs on Node 20 here and on
 * Lambda's newest runtime in AWS).
 */
process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
export {};
