/**
 * The AWS adapters behind the application ports, against mocked SDK v3 clients
 * (aws-sdk-client-mock): the requests they send (what IAM, CloudTrail and the services see) and
 * how service errors map to the port's answers (ExecutionAlreadyExists → alreadyStarted,
 * TaskTimedOut → 'gone', schedule conflict → update, empty secret → SecretNotSet).
 */
import { parsePolicyYaml } from '#core/policy-yaml';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConflictException, CreateScheduleCommand, DeleteScheduleCommand, ResourceNotFoundException, SchedulerClient, UpdateScheduleCommand } from '@aws-sdk/client-scheduler';
import { GetSecretValueCommand, ResourceNotFoundException as SecretNotFound, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { MessageRejected, SendEmailCommand, SESv2Client } from '@aws-sdk/client-sesv2';
import {
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidToken,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AppDeps } from '#app/ports';
import { PortNotWired, createAwsDeps, installAwsDeps } from '#aws/bootstrap';
import { ENV, LambdaConfigError, loadLambdaConfig, required, type LambdaConfig } from '#aws/config';
import { createConnectorRegistry } from '#aws/connectors.aws';
import { CONNECTOR_METHODS, OPTIONAL_CONNECTOR_METHODS, describeConnectors, shapedConnector } from '#aws/connector-shapes';
import { createEntraConnector } from '#connectors/entra.connector';
import { createOktaConnector } from '#connectors/okta.connector';
import { createScimConnector } from '#connectors/scim.connector';
import type { PolicyTarget } from '#core/policy';
import { startScimStandIn } from '#local/standins/scim';
import { startItsmStandIn } from '#local/standins/itsm';
import { wireTicketing } from '#aws/ticketing.wiring';
import type { WiringContext } from '#aws/bootstrap';
import type { ExceptionRecord } from '#core/ledger';
import { wireWorkflowsWithDecisions } from '#aws/decisions.wiring';
import { DynamoLedger, LEDGER_CLIENT_CONFIG } from '#aws/ledger.dynamodb';
import { createScheduledActionHandler, type ScheduledActionEvent } from '#aws/scheduled-action';
import { SCHEDULED_TIME, SCHEDULE_RETRY_POLICY, scheduledActionInput } from '#aws/schedules';
import { PolicyViolation, ValidationError } from '#core/errors';
import { processDeps } from '#handlers/deps';
import { POLICY_PATH, examplePolicy } from '../helpers/policy.ts';
import { MailRejected, SesMailer } from '#aws/mailer.ses';
import { EmfMetrics } from '#aws/metrics.emf';
import { QueueMessageInvalid, SqsEventQueue, wireQueue } from '#aws/queue.sqs';
import { EventBridgeScheduler, ScheduleInvalid, atExpression } from '#aws/scheduler.eventbridge';
import { SecretInvalid, SecretNotSet, SecretValues, SecretsManagerSecrets } from '#aws/secrets.sm';
import { SfnWorkflows, WorkflowNotDeployed, executionArn, wireWorkflows } from '#aws/workflows.sfn';

const meta = { $metadata: {} };
const ARN = (svc: string, rest: string) => `arn:aws:${svc}:eu-west-1:123456789012:${rest}`;

// ---------------------------------------------------------------------------------------------
describe('SqsEventQueue (FIFO)', () => {
  const sqs = mockClient(SQSClient);
  const queueUrl = 'https://sqs.eu-west-1.amazonaws.com/123456789012/jml-events.fifo';
  const queue = new SqsEventQueue({ client: new SQSClient({}), queueUrl });
  beforeEach(() => sqs.reset());

  it('sends the message as JSON with the person as message group and the idempotency key as deduplication id', async () => {
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
    await queue.send({ kind: 'hr-event', runId: 'run-abc', employeeId: 'E1001' }, { groupId: 'E1001', deduplicationId: 'f'.repeat(64) });
    const calls = sqs.commandCalls(SendMessageCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify({ kind: 'hr-event', runId: 'run-abc', employeeId: 'E1001' }),
      MessageGroupId: 'E1001',
      MessageDeduplicationId: 'f'.repeat(64),
    });
  });

  it('refuses ids SQS would reject, before calling SQS', async () => {
    await expect(queue.send({ kind: 'hr-event', runId: 'r', employeeId: 'E 1' }, { groupId: 'E 1', deduplicationId: 'k' })).rejects.toThrow(
      /groupId: must be 1-128 printable ASCII/,
    );
    await expect(queue.send({ kind: 'hr-event', runId: 'r', employeeId: 'E1' }, { groupId: 'E1', deduplicationId: 'x'.repeat(129) })).rejects.toBeInstanceOf(
      QueueMessageInvalid,
    );
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(0);
  });

  it('only works on a FIFO queue', () => {
    expect(() => new SqsEventQueue({ client: new SQSClient({}), queueUrl: queueUrl.replace('.fifo', '') })).toThrow(/FIFO/);
  });

  it('lets an SQS failure reach the caller (the webhook answers 5xx and the sender retries)', async () => {
    sqs.on(SendMessageCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(queue.send({ kind: 'hr-event', runId: 'r', employeeId: 'E1' }, { groupId: 'E1', deduplicationId: 'k' })).rejects.toThrow('Rate exceeded');
  });
});

// ---------------------------------------------------------------------------------------------
describe('SfnWorkflows (Step Functions)', () => {
  const sfn = mockClient(SFNClient);
  const machines = {
    joiner: ARN('states', 'stateMachine:Jml-joiner'),
    mover: ARN('states', 'stateMachine:Jml-mover'),
    leaver: ARN('states', 'stateMachine:Jml-leaver'),
  };
  const engine = new SfnWorkflows({ client: new SFNClient({}), stateMachines: machines });
  beforeEach(() => sfn.reset());

  it('starts the workflow state machine with the run id as execution name', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: ARN('states', 'execution:Jml-leaver:run-1'), startDate: new Date() });
    const r = await engine.start('leaver', 'run-1', { runId: 'run-1', employeeId: 'E1' });
    expect(r).toEqual({ executionId: ARN('states', 'execution:Jml-leaver:run-1'), alreadyStarted: false });
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input).toEqual({
      stateMachineArn: machines.leaver,
      name: 'run-1',
      input: JSON.stringify({ runId: 'run-1', employeeId: 'E1' }),
    });
  });

  it('reports ExecutionAlreadyExists as alreadyStarted with the existing execution', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'Execution Already Exists', ...meta }));
    expect(await engine.start('joiner', 'run-2', {})).toEqual({ executionId: ARN('states', 'execution:Jml-joiner:run-2'), alreadyStarted: true });
  });

  it('refuses a workflow with no deployed state machine without calling AWS', async () => {
    await expect(engine.start('reconcile', 'nightly-2030-01-01', {})).rejects.toBeInstanceOf(WorkflowNotDeployed);
    expect(sfn.calls()).toHaveLength(0);
  });

  it('passes on other start errors', async () => {
    sfn.on(StartExecutionCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(engine.start('mover', 'run-3', {})).rejects.toThrow('Rate exceeded');
  });

  it('stops the execution of that name under whichever state machine has it', async () => {
    sfn.on(StopExecutionCommand).rejects(new ExecutionDoesNotExist({ message: 'no', ...meta }));
    sfn.on(StopExecutionCommand, { executionArn: ARN('states', 'execution:Jml-joiner:run-9') }).resolves({ stopDate: new Date() });
    await engine.stop('run-9', 'superseded by run-10');
    const arns = sfn.commandCalls(StopExecutionCommand).map((c) => c.args[0].input.executionArn).sort();
    expect(arns).toEqual(Object.values(machines).map((m) => executionArn(m, 'run-9')).sort());
    expect(sfn.commandCalls(StopExecutionCommand)[0]!.args[0].input).toMatchObject({ cause: 'superseded by run-10', error: 'Superseded' });
  });

  it('passes on a stop error other than "does not exist"', async () => {
    sfn.on(StopExecutionCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    await expect(engine.stop('run-9', 'x')).rejects.toThrow('denied');
  });

  it('sends task success with the output as JSON', async () => {
    sfn.on(SendTaskSuccessCommand).resolves({});
    expect(await engine.succeed('token-1', { decision: 'approved' })).toBe('ok');
    expect(sfn.commandCalls(SendTaskSuccessCommand)[0]!.args[0].input).toEqual({ taskToken: 'token-1', output: '{"decision":"approved"}' });
  });

  it.each([
    ['TaskTimedOut', () => new TaskTimedOut({ message: 'timed out', ...meta })],
    ['TaskDoesNotExist', () => new TaskDoesNotExist({ message: 'gone', ...meta })],
    ['InvalidToken', () => new InvalidToken({ message: 'invalid', ...meta })],
  ])('answers %s as "gone" (the decision came too late)', async (_name, error) => {
    sfn.on(SendTaskSuccessCommand).rejects(error());
    sfn.on(SendTaskFailureCommand).rejects(error());
    expect(await engine.succeed('t', {})).toBe('gone');
    expect(await engine.fail('t', 'ApprovalRejected', '{}')).toBe('gone');
  });

  it('passes on other callback errors, and truncates error and cause to the service limits', async () => {
    sfn.on(SendTaskSuccessCommand).rejects(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
    await expect(engine.succeed('t', {})).rejects.toThrow('throttled');
    sfn.on(SendTaskFailureCommand).resolves({});
    expect(await engine.fail('t', 'E'.repeat(300), 'c'.repeat(40_000))).toBe('ok');
    const input = sfn.commandCalls(SendTaskFailureCommand)[0]!.args[0].input;
    expect(input.error).toHaveLength(256);
    expect(input.cause).toHaveLength(32_768);
  });
});

// ---------------------------------------------------------------------------------------------
describe('SesMailer (SESv2)', () => {
  const ses = mockClient(SESv2Client);
  beforeEach(() => ses.reset());
  const mail = {
    to: ['manager@acme.example'],
    subject: 'Approve access for Ada',
    text: 'Open https://api.example/approvals/a-1?t=xyz',
    html: '<p>Open <a href="https://api.example/approvals/a-1?t=xyz">the request</a></p>',
    links: ['https://api.example/approvals/a-1?t=xyz'],
    runId: 'run-1',
    approvalId: 'apr#1',
  };

  it('sends text and HTML from the sender through the configuration set, tagged with run and approval', async () => {
    ses.on(SendEmailCommand).resolves({ MessageId: 'ses-1' });
    const mailer = new SesMailer({ client: new SESv2Client({}), from: 'access@acme.example', configurationSet: 'jml' });
    expect(await mailer.send(mail)).toEqual({ messageId: 'ses-1' });
    expect(ses.commandCalls(SendEmailCommand)[0]!.args[0].input).toEqual({
      FromEmailAddress: 'access@acme.example',
      Destination: { ToAddresses: ['manager@acme.example'] },
      Content: {
        Simple: {
          Subject: { Data: mail.subject, Charset: 'UTF-8' },
          Body: { Text: { Data: mail.text, Charset: 'UTF-8' }, Html: { Data: mail.html, Charset: 'UTF-8' } },
        },
      },
      ConfigurationSetName: 'jml',
      EmailTags: [
        { Name: 'runId', Value: 'run-1' },
        { Name: 'approvalId', Value: 'apr_1' },
      ],
    });
  });

  it('omits the configuration set when there is none', async () => {
    ses.on(SendEmailCommand).resolves({ MessageId: 'ses-2' });
    await new SesMailer({ client: new SESv2Client({}), from: 'access@acme.example' }).send({ ...mail, runId: undefined, approvalId: undefined });
    const input = ses.commandCalls(SendEmailCommand)[0]!.args[0].input;
    expect(input).not.toHaveProperty('ConfigurationSetName');
    expect(input).not.toHaveProperty('EmailTags');
  });

  it("raises MailRejected with SES's reason, never the body", async () => {
    ses.on(SendEmailCommand).rejects(new MessageRejected({ message: 'Email address is not verified.', ...meta }));
    const err = (await new SesMailer({ client: new SESv2Client({}), from: 'access@acme.example' }).send(mail).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(MailRejected);
    expect(err.message).toBe('SES refused the mail (MessageRejected): Email address is not verified.');
    expect(err.message).not.toContain('t=xyz');
  });

  it('refuses a mail without recipients without calling SES', async () => {
    await expect(new SesMailer({ client: new SESv2Client({}), from: 'a@b.example' }).send({ ...mail, to: [] })).rejects.toBeInstanceOf(MailRejected);
    expect(ses.calls()).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('EventBridgeScheduler', () => {
  const sch = mockClient(SchedulerClient);
  const NOW = Date.parse('2030-01-10T08:00:00Z');
  const options = {
    client: new SchedulerClient({}),
    groupName: 'jml',
    roleArn: ARN('iam', 'role/jml-scheduler').replace(':eu-west-1', ''),
    deadLetterArn: ARN('sqs', 'jml-scheduler-dlq'),
    eventsQueueArn: ARN('sqs', 'jml-events.fifo'),
    actionFunctionArn: ARN('lambda', 'function:jml-scheduled-action'),
    now: () => NOW,
  };
  const scheduler = new EventBridgeScheduler(options);
  beforeEach(() => sch.reset());

  it('schedules a future-dated run onto the events FIFO queue, grouped by person, once, in UTC', async () => {
    sch.on(CreateScheduleCommand).resolves({ ScheduleArn: 'arn' });
    await scheduler.upsertOnce('jml-run-E1001-joiner', new Date('2030-02-03T07:30:15.250Z'), {
      kind: 'start-run',
      payload: { runId: 'run-1', employeeId: 'E1001' },
    });
    expect(sch.commandCalls(CreateScheduleCommand)[0]!.args[0].input).toEqual({
      Name: 'jml-run-E1001-joiner',
      GroupName: 'jml',
      ScheduleExpression: 'at(2030-02-03T07:30:15)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      State: 'ENABLED',
      Description: 'jml start-run',
      Target: {
        Arn: options.eventsQueueArn,
        RoleArn: options.roleArn,
        Input: JSON.stringify({ kind: 'scheduled-run', runId: 'run-1', employeeId: 'E1001' }),
        SqsParameters: { MessageGroupId: 'E1001' },
        RetryPolicy: { ...SCHEDULE_RETRY_POLICY },
        DeadLetterConfig: { Arn: options.deadLetterArn },
      },
    });
  });

  it('sends other actions to the scheduled-action function, within a small flexible window', async () => {
    sch.on(CreateScheduleCommand).resolves({});
    const payload = { employeeId: 'E1', target: 'slack', runId: 'run-7', terminationVersion: '2030-01-01T00:00:00Z' };
    await scheduler.upsertOnce('jml-retention-E1-slack', new Date('2030-04-01T00:00:00Z'), { kind: 'retention-delete', payload });
    const input = sch.commandCalls(CreateScheduleCommand)[0]!.args[0].input;
    expect(input.FlexibleTimeWindow).toEqual({ Mode: 'FLEXIBLE', MaximumWindowInMinutes: 15 });
    expect(input.Target).toMatchObject({ Arn: options.actionFunctionArn, DeadLetterConfig: { Arn: options.deadLetterArn } });
    expect(JSON.parse(input.Target!.Input!)).toEqual({ kind: 'retention-delete', payload, schedule: 'jml-retention-E1-slack', at: '<aws.scheduler.scheduled-time>' });
    expect(input.Target).not.toHaveProperty('SqsParameters');
  });

  it('moves an existing schedule: CreateSchedule conflict → UpdateSchedule with the full definition', async () => {
    sch.on(CreateScheduleCommand).rejects(new ConflictException({ message: 'Schedule already exists', Message: 'Schedule already exists', ...meta }));
    sch.on(UpdateScheduleCommand).resolves({});
    const at = new Date('2030-03-01T09:00:00Z');
    await scheduler.upsertOnce('jml-run-E2-leaver', at, { kind: 'start-run', payload: { runId: 'run-2', employeeId: 'E2' } });
    expect(sch.commandCalls(CreateScheduleCommand)).toHaveLength(1);
    const update = sch.commandCalls(UpdateScheduleCommand);
    expect(update).toHaveLength(1);
    expect(update[0]!.args[0].input).toEqual(sch.commandCalls(CreateScheduleCommand)[0]!.args[0].input);
    expect(update[0]!.args[0].input.ScheduleExpression).toBe('at(2030-03-01T09:00:00)');
  });

  it('creates it again when it fired and deleted itself between the conflict and the update', async () => {
    sch.on(CreateScheduleCommand).rejectsOnce(new ConflictException({ message: 'exists', Message: 'exists', ...meta })).resolves({});
    sch.on(UpdateScheduleCommand).rejects(new ResourceNotFoundException({ message: 'gone', Message: 'gone', ...meta }));
    await scheduler.upsertOnce('jml-run-E3-joiner', new Date('2030-03-01T09:00:00Z'), { kind: 'start-run', payload: { runId: 'r', employeeId: 'E3' } });
    expect(sch.commandCalls(CreateScheduleCommand)).toHaveLength(2);
  });

  it('moves a time already past to one minute from now, so a due action still runs', async () => {
    sch.on(CreateScheduleCommand).resolves({});
    await scheduler.upsertOnce('jml-run-E4-mover', new Date('2029-12-31T00:00:00Z'), { kind: 'start-run', payload: { runId: 'r', employeeId: 'E4' } });
    expect(sch.commandCalls(CreateScheduleCommand)[0]!.args[0].input.ScheduleExpression).toBe(atExpression(new Date(NOW + 60_000)));
  });

  it('refuses names and payloads Scheduler or the consumer could not use, before calling AWS', async () => {
    await expect(scheduler.upsertOnce('bad name!', new Date(NOW + 86_400_000), { kind: 'reconcile', payload: {} })).rejects.toBeInstanceOf(ScheduleInvalid);
    await expect(scheduler.upsertOnce('x'.repeat(65), new Date(NOW + 86_400_000), { kind: 'reconcile', payload: {} })).rejects.toBeInstanceOf(ScheduleInvalid);
    await expect(scheduler.upsertOnce('ok', new Date(NOW + 86_400_000), { kind: 'start-run', payload: { runId: 'r' } })).rejects.toThrow(/payload.employeeId/);
    expect(sch.calls()).toHaveLength(0);
  });

  it('deletes a pending schedule; an unknown one is false', async () => {
    sch.on(DeleteScheduleCommand, { Name: 'there' }).resolves({});
    sch.on(DeleteScheduleCommand, { Name: 'missing' }).rejects(new ResourceNotFoundException({ message: 'not found', Message: 'not found', ...meta }));
    expect(await scheduler.delete('there')).toBe(true);
    expect(await scheduler.delete('missing')).toBe(false);
    expect(sch.commandCalls(DeleteScheduleCommand)[0]!.args[0].input).toEqual({ Name: 'there', GroupName: 'jml' });
  });
});

// ---------------------------------------------------------------------------------------------
describe('Secrets Manager secrets', () => {
  const sm = mockClient(SecretsManagerClient);
  const hrisArn = ARN('secretsmanager', 'secret:Jml/hris-webhook-AbCdEf');
  const throwaway = () => randomBytes(24).toString('base64url');
  let now = 0;
  const make = () => {
    const values = new SecretValues({ client: new SecretsManagerClient({}), ttlMs: 300_000, now: () => now });
    return new SecretsManagerSecrets({ values, arns: { hrisWebhook: hrisArn }, variables: ENV.secretArn });
  };
  beforeEach(() => {
    sm.reset();
    now = 1_000_000;
  });

  it('returns current then previous during a rotation', async () => {
    const current = throwaway();
    const previous = throwaway();
    sm.on(GetSecretValueCommand, { SecretId: hrisArn }).resolves({ SecretString: JSON.stringify({ current, previous }) });
    expect(await make().get('hrisWebhook')).toEqual([current, previous]);
  });

  it('keeps a value for the cache time, shares one request between concurrent callers, then reads again', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ current: throwaway() }) });
    const secrets = make();
    await Promise.all([secrets.get('hrisWebhook'), secrets.get('hrisWebhook'), secrets.get('hrisWebhook')]);
    now += 299_000;
    await secrets.get('hrisWebhook');
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    now += 2_000;
    await secrets.get('hrisWebhook');
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });

  it('does not remember a failed read', async () => {
    sm.on(GetSecretValueCommand).rejectsOnce(Object.assign(new Error('throttled'), { name: 'ThrottlingException' })).resolves({ SecretString: '{"current":"k"}' });
    const secrets = make();
    await expect(secrets.get('hrisWebhook')).rejects.toThrow('throttled');
    expect(await secrets.get('hrisWebhook')).toEqual(['k']);
  });

  it('says which secret has no value yet (an empty secret the operator has not filled)', async () => {
    sm.on(GetSecretValueCommand).rejects(new SecretNotFound({ message: "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT", ...meta }));
    const err = (await make().get('hrisWebhook').catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(SecretNotSet);
    expect(err.message).toContain(`secret hrisWebhook (${hrisArn}) has no value yet`);
  });

  it('names the missing field of a malformed value, never the value itself', async () => {
    const value = throwaway();
    sm.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ curent: value }) });
    const err = (await make().get('hrisWebhook').catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(SecretInvalid);
    expect(err.message).toBe('secret hrisWebhook: current: required');
    sm.reset();
    sm.on(GetSecretValueCommand).resolves({ SecretString: value });
    const notJson = (await make().get('hrisWebhook').catch((e: unknown) => e)) as Error;
    expect(notJson.message).toMatch(/not JSON/);
    expect(notJson.message).not.toContain(value);
  });

  it('names the variable of a secret this function is not bound to', async () => {
    await expect(make().get('linkSigning')).rejects.toThrow(`secret linkSigning: ${ENV.secretArn.linkSigning} is not set`);
    expect(sm.calls()).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('EmfMetrics', () => {
  let lines: string[] = [];
  beforeEach(() => {
    lines = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
      lines.push(String(chunk));
      return true;
    });
  });
  afterEach(() => vi.restoreAllMocks());

  it('writes each point at once as an EMF document in the jml namespace with its own dimensions', () => {
    const sink = new EmfMetrics(new Metrics({ namespace: 'jml', serviceName: 'jml' }));
    sink.put('TimeToDisable', 42.5, 'Seconds', { Workflow: 'leaver' });
    sink.put('ExceptionOpened', 1, 'Count', { Target: 'slack', Kind: 'drift' });
    const docs = lines.filter((l) => l.includes('_aws')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(docs).toHaveLength(2);
    const [first, second] = docs as Array<{ _aws: { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: unknown[] }> } } & Record<string, unknown>>;
    expect(first!._aws.CloudWatchMetrics[0]).toEqual({ Namespace: 'jml', Dimensions: [['service', 'Workflow']], Metrics: [{ Name: 'TimeToDisable', Unit: 'Seconds' }] });
    expect(first).toMatchObject({ service: 'jml', Workflow: 'leaver', TimeToDisable: 42.5 });
    expect(second).toMatchObject({ Target: 'slack', Kind: 'drift', ExceptionOpened: 1 });
    expect(second).not.toHaveProperty('Workflow');
  });

  it('skips a value that is not a finite number instead of writing a false zero', () => {
    new EmfMetrics(new Metrics({ namespace: 'jml', serviceName: 'jml' })).put('RevocationCompleteness', Number.NaN, 'Percent');
    expect(lines.filter((l) => l.includes('_aws'))).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('Lambda environment', () => {
  const base = { [ENV.tableName]: 'jml', [ENV.publicBaseUrl]: 'https://api.example.test/v1' };

  it('reads a minimal environment: only the ledger and the public base URL', () => {
    const c = loadLambdaConfig(base);
    expect(c).toEqual({ tableName: 'jml', publicBaseUrl: 'https://api.example.test/v1', stateMachines: {}, secrets: {}, scimApps: [] });
  });

  it('names each missing or malformed variable', () => {
    expect(() => loadLambdaConfig({ [ENV.publicBaseUrl]: 'https://x.test' })).toThrow(`${ENV.tableName}: required`);
    expect(() => loadLambdaConfig({ ...base, [ENV.stateMachineArn.joiner]: 'joiner' })).toThrow(`${ENV.stateMachineArn.joiner}: must be an states ARN`);
    expect(() => loadLambdaConfig({ ...base, [ENV.scimApps]: '[{"name":"slack"' })).toThrow(`${ENV.scimApps}: is not valid JSON`);
    expect(() => loadLambdaConfig({ ...base, [ENV.scimApps]: '[{"name":"slack","baseUrl":"http://x"}]' })).toThrow(`${ENV.scimApps}[0].baseUrl`);
    expect(() => loadLambdaConfig({ ...base, [ENV.itsm]: '{"system":"servicenow"}' })).toThrow(`${ENV.itsm}.instanceUrl`);
  });

  it('reads the ITSM with its secret, and refuses one without the other', () => {
    const itsm = { system: 'webhook', url: 'https://bridge.acme.example/jml' };
    const secretArn = ARN('secretsmanager', 'secret:Jml/itsm-AbCdEf');
    expect(loadLambdaConfig({ ...base, [ENV.itsm]: JSON.stringify(itsm), [ENV.itsmSecretArn]: secretArn }).itsm).toEqual({ config: itsm, secretArn });
    expect(() => loadLambdaConfig({ ...base, [ENV.itsm]: JSON.stringify(itsm) })).toThrow(`${ENV.itsmSecretArn}: required with ${ENV.itsm} (ITSM tickets)`);
  });

  it('names the variables a partial binding is missing', () => {
    expect(() => loadLambdaConfig({ ...base, [ENV.scheduleGroup]: 'jml', [ENV.schedulerRoleArn]: 'arn:aws:iam::123456789012:role/r' })).toThrow(
      `${ENV.schedulerDlqArn}, ${ENV.eventsQueueArn}, ${ENV.scheduledActionFunctionArn}: required with ${ENV.scheduleGroup}, ${ENV.schedulerRoleArn} (EventBridge Scheduler)`,
    );
    expect(() => loadLambdaConfig({ ...base, [ENV.idpKind]: 'okta', [ENV.idpSecretArn]: ARN('secretsmanager', 'secret:x') })).toThrow(
      `${ENV.oktaOrgUrl}: required with`,
    );
  });

  it('reads the full set the stack binds', () => {
    const c = loadLambdaConfig({
      ...base,
      [ENV.evidenceBucket]: 'evidence-bucket',
      [ENV.evidenceLockMode]: 'COMPLIANCE',
      [ENV.evidenceRetainDays]: '2557',
      [ENV.idpKind]: 'entra',
      [ENV.idpSecretArn]: ARN('secretsmanager', 'secret:idp'),
      [ENV.entraTenantId]: 'acme.example',
      [ENV.scimApps]: JSON.stringify([{ name: 'slack', baseUrl: 'https://api.slack.com/scim/v2', secretArn: ARN('secretsmanager', 'secret:slack') }]),
      [ENV.secretArn.linkSigning]: ARN('secretsmanager', 'secret:link'),
    });
    expect(c.evidence).toEqual({ bucket: 'evidence-bucket', objectLock: { mode: 'COMPLIANCE', retainDays: 2557 } });
    expect(c.idp).toEqual({ kind: 'entra', secretArn: ARN('secretsmanager', 'secret:idp'), tenantId: 'acme.example' });
    expect(c.scimApps.map((a) => a.name)).toEqual(['slack']);
    expect(c.secrets).toEqual({ linkSigning: ARN('secretsmanager', 'secret:link') });
  });

  it('required() names the variable and what the function is not bound to', () => {
    expect(() => required(undefined, ENV.eventsQueueUrl, 'the events queue')).toThrow(LambdaConfigError);
    expect(() => required(undefined, ENV.eventsQueueUrl, 'the events queue')).toThrow(`${ENV.eventsQueueUrl} is not set: this function is not bound to the events queue`);
  });
});

// ---------------------------------------------------------------------------------------------
describe('connector registry from Secrets Manager', () => {
  const sm = mockClient(SecretsManagerClient);
  const policy = examplePolicy(); // okta + slack + netsuite (SCIM)
  const idpArn = ARN('secretsmanager', 'secret:Jml/okta-api-token');
  const slackArn = ARN('secretsmanager', 'secret:Jml/scim/slack');
  const netsuiteArn = ARN('secretsmanager', 'secret:Jml/scim/netsuite');
  const config = (over: Partial<LambdaConfig> = {}): LambdaConfig => ({
    tableName: 'jml',
    publicBaseUrl: 'https://api.example.test/v1',
    stateMachines: {},
    secrets: {},
    idp: { kind: 'okta', secretArn: idpArn, orgUrl: 'https://acme.okta.com' },
    scimApps: [
      { name: 'slack', baseUrl: 'https://api.slack.com/scim/v2', secretArn: slackArn },
      { name: 'netsuite', baseUrl: 'https://scim.netsuite.example/scim/v2', secretArn: netsuiteArn, quirks: { putOnly: true } },
    ],
    ...over,
  });
  const token = () => JSON.stringify({ token: randomBytes(24).toString('base64url') });
  let now = 0;
  const values = () => new SecretValues({ client: new SecretsManagerClient({}), ttlMs: 300_000, now: () => now });
  const previousKind = process.env.JML_IDP_KIND;
  beforeEach(() => {
    sm.reset();
    now = 5_000_000;
    process.env.JML_IDP_KIND = 'okta'; // what the bundle's define fixes at build time
  });
  afterEach(() => {
    if (previousKind === undefined) delete process.env.JML_IDP_KIND;
    else process.env.JML_IDP_KIND = previousKind;
  });

  it('hands out every managed target at once, and reads no credentials and loads no connector before a call', async () => {
    sm.on(GetSecretValueCommand).callsFake(() => ({ SecretString: token() }));
    const registry = await createConnectorRegistry({ config: config(), policy, secrets: values(), now: () => now });
    expect(registry.get('okta')).toMatchObject({ name: 'okta', kind: 'okta', capabilities: { suspend: true } });
    expect(typeof registry.get('okta').listEntitlementMembers).toBe('function');
    expect(registry.get('slack')).toMatchObject({ name: 'slack', kind: 'scim', capabilities: { suspend: false } });
    expect(registry.get('netsuite')).toMatchObject({ name: 'netsuite', kind: 'scim' });
    expect(typeof (registry.get('slack') as { listChanges?: unknown }).listChanges).toBe('undefined');
    expect(registry.get('slack')).toBe(registry.get('slack'));
    expect(() => registry.get('github')).toThrow(PolicyViolation);
    expect(sm.calls()).toHaveLength(0);
  });

  it("the first call reads that target's credentials and builds its connector, once for concurrent calls; other targets stay unread", async () => {
    const scimToken = randomBytes(24).toString('base64url');
    const app = await startScimStandIn({ name: 'slack', token: scimToken, seed: { users: [{ userName: 'ada@acme.example', externalId: 'E1001', active: true }] } });
    try {
      sm.on(GetSecretValueCommand, { SecretId: slackArn }).resolves({ SecretString: JSON.stringify({ token: scimToken }) });
      const apps = [{ name: 'slack', baseUrl: app.url, secretArn: slackArn }, { name: 'netsuite', baseUrl: 'https://scim.netsuite.example/scim/v2', secretArn: netsuiteArn }];
      const registry = await createConnectorRegistry({ config: config({ scimApps: apps }), policy, secrets: values(), now: () => now });
      const slack = registry.get('slack');
      const [page, found] = await Promise.all([slack.listAccounts(), slack.findAccounts({ employeeId: 'E1001' })]);
      expect(page.accounts.map((a) => a.userName)).toEqual(['ada@acme.example']);
      expect(found.map((a) => a.userName)).toEqual(['ada@acme.example']);
      expect(sm.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input.SecretId)).toEqual([slackArn]);
      expect(await registry.connector('slack')).toBe(await registry.connector('slack'));
      expect(app.requestLog.length).toBeGreaterThanOrEqual(2);
    } finally {
      await app.close();
    }
  });

  it('names every configuration gap at once', async () => {
    await expect(createConnectorRegistry({ config: config({ scimApps: [] }), policy, secrets: values() })).rejects.toThrow(
      `connectors: ${ENV.scimApps}: no entry for the policy's SCIM target slack; ${ENV.scimApps}: no entry for the policy's SCIM target netsuite`,
    );
    await expect(
      createConnectorRegistry({ config: config({ idp: { kind: 'entra', secretArn: idpArn, tenantId: 'acme.example' } }), policy, secrets: values() }),
    ).rejects.toThrow(`${ENV.idpKind}: is entra but the policy's IdP target okta is okta`);
    expect(sm.calls()).toHaveLength(0);
  });

  it('fails the call on a target with malformed or missing credentials, naming the target and never the value, and tries again on the next call', async () => {
    const leaked = randomBytes(16).toString('hex');
    sm.on(GetSecretValueCommand).resolves({ SecretString: token() });
    sm.on(GetSecretValueCommand, { SecretId: slackArn }).resolves({ SecretString: JSON.stringify({ bearer: leaked }) });
    const registry = await createConnectorRegistry({ config: config(), policy, secrets: values() });
    const err = (await registry.get('slack').listAccounts().catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(SecretInvalid);
    expect(err.message).toBe('secret slack credentials: token: required');
    expect(err.message).not.toContain(leaked);

    sm.on(GetSecretValueCommand, { SecretId: netsuiteArn }).rejects(new SecretNotFound({ message: 'no AWSCURRENT', ...meta }));
    await expect(registry.get('netsuite').getAccount('u1')).rejects.toThrow(/secret netsuite credentials .* has no value yet/);
    sm.on(GetSecretValueCommand, { SecretId: netsuiteArn }).resolves({ SecretString: token() });
    await expect(registry.connector('netsuite')).resolves.toMatchObject({ name: 'netsuite', kind: 'scim' });
  });

  it('picks up a rotated credential after the cache time without blocking a call, and keeps a connector whose credentials did not change', async () => {
    let slackToken = token();
    const oktaToken = token();
    sm.on(GetSecretValueCommand).callsFake((input: { SecretId: string }) => ({ SecretString: input.SecretId === slackArn ? slackToken : oktaToken }));
    const registry = await createConnectorRegistry({ config: config(), policy, secrets: values(), now: () => now });
    const [slack, okta] = [await registry.connector('slack'), await registry.connector('okta')];
    now += 60_000;
    expect(await registry.connector('slack')).toBe(slack); // fresh: nothing re-read
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    slackToken = token();
    now += 300_000;
    expect(await registry.connector('slack')).toBe(slack); // stale: answered at once, refresh started in the background
    await registry.refresh();
    expect(await registry.connector('slack')).not.toBe(slack);
    expect(await registry.connector('okta')).toBe(okta);
  });
});

describe('connector shapes', () => {
  const policy = examplePolicy();
  const target = (name: string, kind: 'okta' | 'entra' | 'scim') => ({ name, kind }) as PolicyTarget;
  const real = {
    okta: createOktaConnector({ name: 'okta', orgUrl: 'https://acme.okta.com', token: randomBytes(16).toString('hex') }),
    entra: createEntraConnector({ name: 'entra', tenantId: 'acme.example', clientId: randomUUID(), clientSecret: randomBytes(16).toString('hex'), domain: 'acme.example' }),
    scim: createScimConnector({ name: 'app', baseUrl: 'https://app.example/scim/v2', token: randomBytes(16).toString('hex') }),
  } as const;

  it.each(['okta', 'entra', 'scim'] as const)('%s: the shape handed out before loading has the real connector\'s kind, capabilities and methods', (kind) => {
    const shaped = shapedConnector(target(real[kind].name, kind), () => async () => undefined) as unknown as Record<string, unknown>;
    const actual = real[kind] as unknown as Record<string, unknown>;
    expect(shaped.kind).toBe(actual.kind);
    expect(shaped.capabilities).toEqual(actual.capabilities);
    for (const m of [...CONNECTOR_METHODS, ...OPTIONAL_CONNECTOR_METHODS]) {
      expect({ method: m, type: typeof shaped[m] }).toEqual({ method: m, type: typeof actual[m] });
    }
  });

  it('the description-only registry (reconciliation start and finish) answers kind and capabilities and refuses every call by name', async () => {
    const registry = describeConnectors(policy);
    expect(registry.get('okta')).toMatchObject({ name: 'okta', kind: 'okta', capabilities: { suspend: true } });
    expect(registry.get('slack')).toMatchObject({ name: 'slack', kind: 'scim' });
    await expect(registry.get('okta').findAccounts({ employeeId: 'E1001' })).rejects.toThrow(PortNotWired);
    await expect(registry.get('slack').listAccounts()).rejects.toThrow('this function only reads what target slack is; calling its listAccounts() needs the connectors wired (wireConnectors)');
    expect(() => registry.get('github')).toThrow(PolicyViolation);
  });
});

// ---------------------------------------------------------------------------------------------
describe('composition root', () => {
  const env = { [ENV.tableName]: 'jml', [ENV.publicBaseUrl]: 'https://api.example.test/v1' };
  const dynamo = new DynamoDBClient({ region: 'local', ...LEDGER_CLIENT_CONFIG });
  const policyDocument = parsePolicyYaml(readFileSync(POLICY_PATH, 'utf8'));

  it('gives every function the ledger, policy, metrics, clock and base URL, and makes unwired ports fail loudly by name', async () => {
    const deps = await createAwsDeps({ policyDocument, env, dynamo });
    expect(deps.ledger).toBeInstanceOf(DynamoLedger);
    expect((await deps.policy()).idp.name).toBe('okta');
    expect(deps.publicBaseUrl).toBe('https://api.example.test/v1');
    expect(deps.metrics).toBeInstanceOf(EmfMetrics);
    await expect(async () => deps.queue.send({ kind: 'hr-event', runId: 'r', employeeId: 'E' }, { groupId: 'E', deduplicationId: 'k' })).rejects.toThrow(
      'this function has no queue port',
    );
    expect(() => deps.connectors.get('okta')).toThrow(PortNotWired);
    expect(() => deps.callbacks.succeed('t', {})).toThrow('this function has no workflows port');
  });

  it('wires the ports an entry asks for, from the environment, loading each SDK client on first use', async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageCommand).resolves({});
    const deps = await createAwsDeps({
      policyDocument,
      env: { ...env, [ENV.eventsQueueUrl]: 'https://sqs.eu-west-1.amazonaws.com/123456789012/jml-events.fifo', [ENV.stateMachineArn.joiner]: ARN('states', 'stateMachine:Jml-joiner') },
      dynamo,
      ports: { queue: wireQueue, workflows: wireWorkflows },
    });
    expect(deps.queue).toBeInstanceOf(SqsEventQueue);
    expect(deps.workflows).toBeInstanceOf(SfnWorkflows);
    expect(deps.callbacks).toBe(deps.workflows);
    await deps.queue.send({ kind: 'hr-event', runId: 'run-1', employeeId: 'E1' }, { groupId: 'E1', deduplicationId: 'k1' });
    expect(sqs.commandCalls(SendMessageCommand)[0]!.args[0].input.QueueUrl).toBe('https://sqs.eu-west-1.amazonaws.com/123456789012/jml-events.fifo');
    sqs.restore();
  });

  it('routes decision tokens (grants, bulk releases) to their use case and task tokens to Step Functions, for the approvals API', async () => {
    const sfn = mockClient(SFNClient);
    sfn.on(SendTaskSuccessCommand).resolves({});
    const looked: string[] = [];
    const appDeps = { ledger: { getApproval: async (id: string) => (looked.push(id), null) } } as unknown as AppDeps;
    const { callbacks } = wireWorkflowsWithDecisions({
      config: loadLambdaConfig({ ...env, [ENV.stateMachineArn.joiner]: ARN('states', 'stateMachine:Jml-joiner') }),
      policy: examplePolicy(),
      logger: console,
      deps: async () => appDeps,
    });
    expect(await callbacks.succeed('jml-decision:exception-grant:g-1', { approvalId: 'apr-9' })).toBe('gone'); // no such approval
    expect(looked).toEqual(['apr-9']);
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
    expect(await callbacks.succeed('AAAAKgAAAAIAAAAA-task-token', { decision: 'approved' })).toBe('ok');
    expect(sfn.commandCalls(SendTaskSuccessCommand)[0]!.args[0].input.taskToken).toBe('AAAAKgAAAAIAAAAA-task-token');
    sfn.restore();
  });

  it('refuses to start with a bad environment or policy, naming the problem', async () => {
    await expect(createAwsDeps({ policyDocument, env: { [ENV.publicBaseUrl]: 'https://x.test' }, dynamo })).rejects.toThrow(`${ENV.tableName}: required`);
    await expect(createAwsDeps({ policyDocument, env, dynamo, ports: { queue: wireQueue } })).rejects.toThrow(
      `${ENV.eventsQueueUrl} is not set: this function is not bound to the events queue`,
    );
    await expect(createAwsDeps({ policyDocument: { version: 1, targets: [] }, env, dynamo })).rejects.toThrow();
  });

  it('installs the deps for the handlers of this process, built once', async () => {
    let built = 0;
    installAwsDeps({
      policyDocument,
      env,
      dynamo,
      ports: {
        secrets: () => {
          built += 1;
          return { get: async () => ['k'] };
        },
      },
    });
    const [a, b] = await Promise.all([processDeps(), processDeps()]);
    expect(a).toBe(b);
    expect(await a.secrets.get('linkSigning')).toEqual(['k']);
    expect(built).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
describe('scheduled-action function', () => {
  const started: Array<{ workflow: string; name: string; input: unknown }> = [];
  const fakeDeps = () =>
    ({
      clock: { now: () => new Date('2030-05-06T02:03:00Z') },
      ledger: { getApproval: async () => null },
      workflows: {
        start: async (workflow: string, name: string, input: unknown) => {
          started.push({ workflow, name, input });
          return { executionId: `arn:exec:${name}`, alreadyStarted: started.length > 1 };
        },
      },
    }) as unknown as AppDeps;
  const handler = createScheduledActionHandler(async () => fakeDeps());
  beforeEach(() => {
    started.length = 0;
  });

  it('hands the nightly schedule to the dispatch, which starts the reconcile workflow once per UTC day', async () => {
    const input = JSON.parse(scheduledActionInput('jml-nightly-reconcile', { kind: 'reconcile', payload: { scope: 'nightly' } })) as ScheduledActionEvent;
    expect(input.at).toBe(SCHEDULED_TIME); // Scheduler fills it in; a console test leaves it
    expect(await handler({ ...input, at: '2030-05-06T02:00:00Z' })).toEqual({ kind: 'reconcile', runId: 'nightly-2030-05-06', outcome: 'started' });
    expect(await handler(input)).toEqual({ kind: 'reconcile', runId: 'nightly-2030-05-06', outcome: 'already started' });
    expect(started.map((x) => [x.workflow, x.name])).toEqual([
      ['reconcile', 'nightly-2030-05-06'],
      ['reconcile', 'nightly-2030-05-06'],
    ]);
    expect(started[0]!.input).toMatchObject({ scope: 'nightly', trigger: 'jml-nightly-reconcile' });
  });

  it('hands a reminder to the dispatch, and refuses input that is not a schedule firing, naming the field', async () => {
    expect(await handler({ kind: 'approval-reminder', payload: { approvalId: 'apr-1' }, schedule: 'jml-remind-apr-1' })).toEqual({
      kind: 'approval-reminder',
      sent: false,
      reason: 'no such approval',
    });
    await expect(handler({ kind: 'launch', payload: {}, schedule: 's' } as never)).rejects.toThrow(/^kind: must be one of/);
    await expect(handler({ kind: 'reconcile', payload: {} } as never)).rejects.toBeInstanceOf(ValidationError);
  });
});

// ---------------------------------------------------------------------------------------------
describe('ticketing wiring', () => {
  const sm = mockClient(SecretsManagerClient);
  const itsmArn = ARN('secretsmanager', 'secret:Jml/itsm-AbCdEf');
  const base = { [ENV.tableName]: 'jml', [ENV.publicBaseUrl]: 'https://api.example.test/v1' };
  const exception: ExceptionRecord = {
    exceptionId: 'exc-step-run-1-slack',
    runId: 'run-1',
    employeeId: 'E1001',
    target: 'slack',
    owner: 'collab-owners@acme.example',
    kind: 'step_failed',
    reason: 'slack: TargetRejected — 400',
    evidence: {},
    status: 'open',
    openedAt: '2026-11-20T09:00:00.000Z',
  };
  const ctx = (env: Record<string, string>) => ({ config: loadLambdaConfig({ ...base, ...env }) }) as unknown as WiringContext;
  beforeEach(() => sm.reset());

  it('raises the ticket with the credential read from the ITSM secret', async () => {
    const credential = `jml-bot@acme.example:${randomBytes(18).toString('base64url')}`;
    const itsm = await startItsmStandIn({ credential });
    try {
      sm.on(GetSecretValueCommand, { SecretId: itsmArn }).resolves({ SecretString: JSON.stringify({ current: credential }) });
      const ticketing = wireTicketing(ctx({ [ENV.itsm]: JSON.stringify({ system: 'servicenow', instanceUrl: itsm.url }), [ENV.itsmSecretArn]: itsmArn }));
      expect(ticketing.wants('step_failed')).toBe(true);
      const ref = await ticketing.open(exception, { exceptionsUrl: 'https://api.example.test/v1/exceptions?status=open' }, { now: new Date('2026-11-20T09:00:00Z'), retry: false });
      expect(ref).toMatchObject({ system: 'servicenow', key: 'INC0000001' });
      expect(itsm.tickets[0]!.fields).toMatchObject({ correlation_id: 'exc-step-run-1-slack' });
      expect(sm.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input.SecretId)).toEqual([itsmArn]);
    } finally {
      await itsm.close();
    }
  });

  it('without an ITSM, raises no ticket and reads no secret', () => {
    const ticketing = wireTicketing(ctx({}));
    expect(ticketing.wants('leaver_enabled')).toBe(false);
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });
});
