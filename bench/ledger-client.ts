/**
 * The AWS SDK's own CPU per ledger request: the ledger's client (the base DynamoDB client with
 * `cacheMiddleware`, each request through the ledger's own `ledgerRequest`) against the Document
 * client it replaced and the base client without the cache, for the same read and update. The
 * requests are answered in process by a canned response (no network, no DynamoDB), so the figure
 * is the client side alone: what a Lambda spends per ledger call before and after the wire.
 *
 *   npx tsx bench/ledger-client.ts [--requests 2000] [--reps 7]
 *
 * Each rep sends `--requests` of each kind with each client, interleaved; the medians over the
 * reps are reported, with the ratio.
 */
import '../local/quiet.ts';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { HttpResponse } from '@smithy/core/protocols';
import { LEDGER_CLIENT_CONFIG, LEDGER_TRANSLATE_CONFIG, ledgerRequest } from '#aws/ledger.dynamodb';
import { keys } from '#aws/table';
import { percentile } from './_stats.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '2000' }, reps: { type: 'string', default: '7' } } });
const requests = Number(values.requests);
const reps = Number(values.reps);

const runId = 'run-0001';
const run = {
  ...keys.run(runId),
  entity: 'run',
  runId,
  employeeId: 'E1001',
  status: 'EXECUTING',
  lifecycle: 'leaver',
  createdAt: '2030-01-01T08:00:00.000Z',
  updatedAt: '2030-01-01T08:00:01.000Z',
  event: JSON.stringify({ eventType: 'termination', worker: { employeeId: 'E1001', email: 'ada@example.com', department: 'Engineering' } }),
  timeline: Array.from({ length: 6 }, (_, i) => ({ phase: `Phase${i}`, at: '2030-01-01T08:00:01.000Z', note: 'x'.repeat(40) })),
};
const itemBody = JSON.stringify({ Item: marshall(run) });
/** Answers every request in process: the run for a GetItem, an empty body otherwise. */
const requestHandler = {
  handle: async (request: { headers: Record<string, string> }) => ({
    response: new HttpResponse({
      statusCode: 200,
      headers: { 'content-type': 'application/x-amz-json-1.0' },
      body: Readable.from([Buffer.from(request.headers['x-amz-target']!.endsWith('.GetItem') ? itemBody : '{}')]),
    }),
  }),
  updateHttpClientConfig() {},
  httpHandlerConfigs: () => ({}),
};
const settings = { region: 'local', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' }, requestHandler };
const documentClient = DynamoDBDocumentClient.from(new DynamoDBClient(settings), LEDGER_TRANSLATE_CONFIG);
const plainClient = new DynamoDBClient(settings);
const ledgerClient = new DynamoDBClient({ ...settings, ...LEDGER_CLIENT_CONFIG });
/** The same two requests for every client, in native values. */
const read = { TableName: 'jml-ledger', Key: keys.run(runId), ConsistentRead: true };
const update = {
  TableName: 'jml-ledger',
  Key: keys.run(runId),
  UpdateExpression: 'SET #n0 = :v1, #n2 = list_append(if_not_exists(#n2, :v3), :v4)',
  ConditionExpression: 'attribute_exists(pk)',
  ExpressionAttributeNames: { '#n0': 'status', '#n2': 'timeline' },
  ExpressionAttributeValues: { ':v1': 'COMPLETED', ':v3': [], ':v4': [{ phase: 'Closed', at: '2030-01-01T09:00:00.000Z' }] },
};

type Client = 'Document client' | 'base client' | 'base client, cacheMiddleware (the ledger)';
const kinds: Record<string, Record<Client, () => Promise<unknown>>> = {
  'read (GetItem)': {
    'Document client': () => documentClient.send(new GetCommand(read)),
    'base client': () => ledgerRequest(plainClient, 'get', read),
    'base client, cacheMiddleware (the ledger)': () => ledgerRequest(ledgerClient, 'get', read),
  },
  'update (UpdateItem)': {
    'Document client': () => documentClient.send(new UpdateCommand(update)),
    'base client': () => ledgerRequest(plainClient, 'update', update),
    'base client, cacheMiddleware (the ledger)': () => ledgerRequest(ledgerClient, 'update', update),
  },
};

async function cpuPerRequest(send: () => Promise<unknown>, n: number): Promise<number> {
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) await send();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

// Warm-up: module loading, the JIT, the first request's middleware resolution.
for (const clients of Object.values(kinds)) for (const send of Object.values(clients)) await cpuPerRequest(send, requests);
const samples = new Map<string, number[]>();
for (let r = 0; r < reps; r++) {
  for (const [kind, clients] of Object.entries(kinds)) {
    for (const [client, send] of Object.entries(clients)) {
      const key = `${kind}\u0000${client}`;
      samples.set(key, [...(samples.get(key) ?? []), await cpuPerRequest(send, requests)]);
    }
  }
}
const rows = Object.entries(kinds).flatMap(([kind, clients]) => {
  const doc = percentile(samples.get(`${kind}\u0000Document client`)!, 50);
  return Object.keys(clients).map((client) => {
    const us = percentile(samples.get(`${kind}\u0000${client}`)!, 50);
    return { request: kind, client, 'CPU µs per request': Math.round(us), 'vs Document client': Math.round((us / doc) * 100) / 100 };
  });
});
console.log(`CPU per request on the client side (median of ${reps} reps × ${requests} requests; canned responses, no network)`);
console.table(rows);
console.log(JSON.stringify({ bench: 'ledger-client', node: process.version, results: { requests, reps, rows } }));
