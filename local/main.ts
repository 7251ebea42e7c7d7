/**
 * `npm run local` — the whole system on 127.0.0.1, no AWS account.
 *
 *   npm run local                 # state in .jml-local/state, kept across restarts
 *   npm run local -- --fresh      # start again from the demo company
 *   PORT=9000 JML_IDP=entra npm run local
 *   JML_ITSM=servicenow npm run local   # exceptions raise tickets in an ITSM stand-in (jira, servicenow, webhook)
 *
 * Secrets come from env with documented development defaults (JML_HRIS_WEBHOOK_SECRET,
 * JML_BAMBOOHR_PRIVATE_KEY, JML_OKTA_HOOK_SECRET, JML_LINK_SIGNING_KEY). A real Okta org or
 * Entra tenant replaces the stand-in when its URL and credentials are in env (docs/local.md).
 */
import './quiet.ts';
import '#local/polyfills';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createEntraConnector } from '#connectors/entra.connector';
import { createOktaConnector } from '#connectors/okta.connector';
import type { Connector } from '#connectors/connector';
import { signCanonical } from '#core/signature';
import { REPO_ROOT, DEV_SECRETS, startLocalStack } from './stack.ts';
import { startLocalServer } from './server.ts';
import { ensureLocalTls } from './standins/tls.ts';
import { loadDemoOrg, seedDemoOrg } from './demo-org.ts';

const { values } = parseArgs({
  options: {
    fresh: { type: 'boolean' },
    port: { type: 'string' },
    data: { type: 'string' },
    idp: { type: 'string' },
  },
});

const idp = (values.idp ?? process.env.JML_IDP ?? 'okta') as 'okta' | 'entra';
if (idp !== 'okta' && idp !== 'entra') {
  console.error(`JML_IDP must be okta or entra, not "${idp}"`);
  process.exit(2);
}
const itsmEnv = process.env.JML_ITSM || undefined;
const itsm = itsmEnv as 'jira' | 'servicenow' | 'webhook' | undefined;
if (itsmEnv !== undefined && itsmEnv !== 'jira' && itsmEnv !== 'servicenow' && itsmEnv !== 'webhook') {
  console.error(`JML_ITSM must be jira, servicenow or webhook, not "${itsmEnv}"`);
  process.exit(2);
}

// The Graph client sends its token only over https, and Node reads extra CAs only at start-up:
// trust the local throwaway CA by restarting this process once with NODE_EXTRA_CA_CERTS set.
if (idp === 'entra' && !process.env.JML_LOCAL_TLS_READY) {
  const tls = ensureLocalTls();
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, NODE_EXTRA_CA_CERTS: tls.caPath, JML_LOCAL_TLS_READY: '1' },
  });
  child.on('exit', (code) => process.exit(code ?? 1));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
} else {
  await main();
}

function realTenantConnectors(): Record<string, Connector> {
  const out: Record<string, Connector> = {};
  if (idp === 'okta' && process.env.JML_OKTA_ORG_URL && process.env.JML_OKTA_TOKEN) {
    out.okta = createOktaConnector({ name: 'okta', orgUrl: process.env.JML_OKTA_ORG_URL, token: process.env.JML_OKTA_TOKEN });
  }
  if (idp === 'entra' && process.env.JML_ENTRA_TENANT_ID && process.env.JML_ENTRA_CLIENT_ID && process.env.JML_ENTRA_CLIENT_SECRET) {
    out.entra = createEntraConnector({
      name: 'entra',
      tenantId: process.env.JML_ENTRA_TENANT_ID,
      clientId: process.env.JML_ENTRA_CLIENT_ID,
      clientSecret: process.env.JML_ENTRA_CLIENT_SECRET,
      domain: process.env.JML_ENTRA_DOMAIN ?? 'acme.example',
    });
  }
  return out;
}

async function main() {
  const port = Number(values.port ?? process.env.PORT ?? 8787);
  const dataDir = values.data ?? join(REPO_ROOT, '.jml-local', 'state');
  const secrets = {
    hrisWebhook: process.env.JML_HRIS_WEBHOOK_SECRET,
    bambooHr: process.env.JML_BAMBOOHR_PRIVATE_KEY,
    oktaHook: process.env.JML_OKTA_HOOK_SECRET,
    linkSigning: process.env.JML_LINK_SIGNING_KEY,
  };
  const real = realTenantConnectors();
  // The stand-in targets keep their state next to the ledger, so after a restart they still hold
  // what the ledger says jml did (a real tenant keeps its own).
  const targetStateDir = join(dataDir, 'targets');
  const targetsSaved = !values.fresh && existsSync(targetStateDir);
  const stack = await startLocalStack({
    dataDir,
    targetStateDir,
    fresh: !!values.fresh,
    idp,
    publicBaseUrl: `http://127.0.0.1:${port}`,
    secrets,
    connectorOverrides: real,
    ...(itsm ? { itsm } : {}),
  });
  let server;
  try {
    server = await startLocalServer(stack, { port });
  } catch (e) {
    await stack.close();
    const code = (e as NodeJS.ErrnoException).code;
    console.error(code === 'EADDRINUSE' ? `port ${port} is in use — set PORT to another port` : (e as Error).message);
    process.exit(1);
  }
  stack.scheduler.start(1000);
  // On a fresh state, seed the HR ledger and the stand-in targets with the demo company so there
  // is an organisation to change. A real tenant is left as it is.
  let seeded = '';
  let warning = '';
  if (!Object.keys(real).length) {
    const org = loadDemoOrg(join(REPO_ROOT, 'config', 'demo-org.json'));
    const known = await stack.deps.ledger.getPerson(org.workers[0]!.employeeId);
    if (!known) {
      const r = await seedDemoOrg(stack, org);
      seeded = ` — seeded the demo company: ${r.people} people, ${r.accounts} accounts (config/demo-org.json)`;
    } else if (!targetsSaved) {
      warning = `  warning      the ledger in ${dataDir} has people but no saved target state: the stand-ins start empty and the nightly reconcile will report every account missing — \`npm run local -- --fresh\` starts over consistently`;
    }
  }

  const hrisSecret = secrets.hrisWebhook ?? DEV_SECRETS.hrisWebhook;
  const sample = JSON.stringify({
    eventId: 'evt-demo-1',
    eventType: 'hire',
    effectiveDate: '2026-12-01',
    occurredAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    worker: { employeeId: 'E9001', givenName: 'Ada', familyName: 'Lovelace', email: 'ada@acme.example', department: 'Engineering', location: 'London', jobCode: 'ENG-2', managerId: 'E0100', employmentType: 'employee', startDate: '2026-12-01' },
  });
  const ts = Math.floor(Date.now() / 1000);
  const headers = signCanonical(hrisSecret, sample, ts);
  console.log(`jml local runtime on ${server.url}  (identity provider: ${idp}${Object.keys(real).length ? ', real tenant' : ', stand-in'})${seeded}`);
  console.log(`  targets      ${server.url}/local/targets`);
  for (const [name, info] of Object.entries(stack.targetInfo())) {
    if (name === 'scim') for (const s of info as Array<{ name: string; baseUrl: string }>) console.log(`    scim ${s.name.padEnd(9)} ${s.baseUrl}`);
    else console.log(`    ${name.padEnd(14)} ${(info as { orgUrl?: string; baseUrl?: string }).orgUrl ?? (info as { baseUrl?: string }).baseUrl}`);
  }
  console.log(`  state        ${dataDir}${stack.resumed.length ? ` (resumed ${stack.resumed.length} run(s))` : ''}`);
  console.log(`  target state ${targetStateDir}${targetsSaved ? ' (stand-in state loaded)' : ''}`);
  if (warning) console.log(warning);
  console.log(`  evidence     ${join(dataDir, 'evidence')}  ·  ${server.url}/runs/<runId>/evidence/summary.html`);
  console.log(`  outbox       ${server.url}/local/outbox`);
  if (stack.itsm) console.log(`  ITSM         ${itsm} stand-in ${stack.itsm.url}  ·  tickets ${server.url}/local/tickets`);
  console.log(`  secrets      ${Object.values(secrets).some(Boolean) ? 'from env' : 'development defaults (set JML_HRIS_WEBHOOK_SECRET etc. to change)'}`);
  console.log('');
  console.log('Send a signed hire (the signature is valid for 5 minutes):');
  console.log(
    `  curl -sS ${server.url}/hris/events -H 'content-type: application/json' -H 'X-JML-Timestamp: ${headers['X-JML-Timestamp']}' -H 'X-JML-Signature: ${headers['X-JML-Signature']}' --data '${sample}'`,
  );
  console.log('or: npm run jml -- send-event config/examples/hire.json');

  const shutdown = async () => {
    await server.close();
    await stack.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}
