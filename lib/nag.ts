/**
 * cdk-nag (AwsSolutions) acknowledgements, each on the narrowest construct and finding it
 * applies to, with the reason it is acceptable here. Kept together so a reviewer reads every
 * exception to the rules in one place. Anything not acknowledged here fails the synth.
 */
import { Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import type { JmlStack } from './jml-stack.ts';

const ack = (scope: IConstruct, id: string, reason: string) => Validations.of(scope).acknowledge({ id, reason });

function logicalId(c: IConstruct): string {
  return Stack.of(c).getLogicalId(c.node.defaultChild as CfnElement);
}

export function acknowledgeFindings(stack: JmlStack): void {
  const { api, secrets, queues, data, workflows, scheduling } = stack;

  // --- API Gateway -----------------------------------------------------------------------
  ack(
    api.api,
    'AwsSolutions-APIG2',
    'Request parameters (signature and authorization headers, path and query parameters) are validated by API Gateway. Bodies are validated by the handlers after the HMAC check, which must see the raw body, and answer 400 with field-level messages (contract in DESIGN.md).',
  );
  if (!api.webAcl) {
    ack(
      api.api.deploymentStage,
      'AwsSolutions-APIG3',
      'WAF is optional (config api.waf). Every public route authenticates the caller itself (HMAC-signed timestamped webhooks, the Okta hook secret, signed single-use approval tokens), the stage is throttled, and api.hrisAllowedCidrs restricts the HRIS routes by source address.',
    );
  }
  const reasonFor = (path: string) =>
    path.startsWith('/hris/')
      ? 'HRIS webhook: every request is authenticated by an HMAC-SHA256 signature over timestamp and raw body with a 300 s window (secret in Secrets Manager), checked before anything is parsed or stored.'
      : path.startsWith('/okta/')
        ? "Okta event hook: Okta sends the configured Authorization secret on every request; the handler compares it in constant time. Okta's hooks cannot sign requests with SigV4 or Cognito tokens."
        : 'Approval links are opened by approvers from email: the link carries an HMAC-signed token bound to one approver and one approval, expiring and single-use; GET changes nothing.';
  for (const m of api.publicMethods) {
    ack(m, 'AwsSolutions-APIG4', reasonFor(m.resource.path));
    ack(m, 'AwsSolutions-COG4', `No Cognito users exist for this caller. ${reasonFor(m.resource.path)}`);
  }
  for (const m of api.readMethods) {
    ack(m, 'AwsSolutions-COG4', 'The read API and the exception-grant API are for operators and auditors with AWS credentials: IAM authorisation (SigV4), scoped by their IAM policies, instead of a Cognito user pool.');
  }
  const cloudWatchRole = api.api.node.tryFindChild('CloudWatchRole');
  if (cloudWatchRole) {
    ack(
      cloudWatchRole,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      "API Gateway's account-level logging role; the AWS managed policy is the documented one and grants CloudWatch Logs writes only.",
    );
  }

  // --- IAM wildcards ------------------------------------------------------------------------
  const xray =
    'X-Ray PutTraceSegments / PutTelemetryRecords have no resource-level permissions (AWS documents "*" as the only resource); added by active tracing.';
  const ledgerIndexes = `AwsSolutions-IAM5[Resource::<${logicalId(data.table)}.Arn>/index/*]`;
  for (const f of Object.values(stack.functions)) {
    const role = f.role!;
    ack(role, 'AwsSolutions-IAM5[Resource::*]', xray);
    ack(role, ledgerIndexes, 'The ledger queries its own three GSIs (gsi1, gsi2, persons); the grant covers the indexes of this one table only.');
  }
  for (const f of Object.values(stack.functions)) {
    const ports = f.spec.ports as readonly string[];
    if (ports.includes('evidence')) {
      ack(
        f.role!,
        `AwsSolutions-IAM5[Resource::<${logicalId(data.evidenceBucket)}.Arn>/evidence/*]`,
        'Evidence bundles and chain index entries are new keys under evidence/ named at run time (year/month/run id). Get/put/put-retention only: no delete, no governance bypass.',
      );
    }
    if (ports.includes('scheduler')) {
      ack(
        f.role!,
        `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/${scheduling.groupName}/*]`,
        'One-time schedules are named per person, date or approval at run time (deterministic names so they can be moved or cancelled); limited to the jml schedule group.',
      );
    }
  }
  for (const [workflow, name] of Object.entries(workflows.names)) {
    if (workflow === 'reconcile') continue;
    ack(
      stack.functions['start-run'].role!,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${name}:*]`,
      `Executions are named by run id when a run starts; a superseded run's execution is stopped (states:StopExecution only) on the ${workflow} state machine.`,
    );
  }
  for (const machine of Object.values(workflows.machines)) {
    ack(
      machine.role,
      'AwsSolutions-IAM5[Resource::*]',
      'Step Functions log delivery (logs:CreateLogDelivery and related) and X-Ray actions have no resource-level permissions; AWS documents "*" for them.',
    );
  }

  // --- Secrets --------------------------------------------------------------------------------
  for (const [name, s] of Object.entries(secrets.port)) {
    ack(
      s,
      'AwsSolutions-SMG4',
      name === 'bambooHr'
        ? 'The BambooHR webhook key is issued by BambooHR; rotate it there and store {current, previous} during the switch (docs/deploy.md).'
        : 'A shared key that the other side (HRIS, Okta, approval links in sent mails) must learn at the same time: rotated by hand with the {current, previous} shape, both accepted during the switch (docs/deploy.md). A rotation Lambda cannot update the other side.',
    );
  }
  ack(secrets.idp, 'AwsSolutions-SMG4', 'IdP API credentials are issued by the IdP (Okta API token / Entra client secret); rotate them there, then put the new value here (docs/deploy.md).');
  for (const s of Object.values(secrets.scim)) {
    ack(s, 'AwsSolutions-SMG4', "SCIM bearer tokens are issued by each SaaS app's admin console; rotate them there, then put the new value here (docs/deploy.md).");
  }
  if (secrets.itsm) {
    ack(secrets.itsm, 'AwsSolutions-SMG4', 'The ITSM credential is issued by the ITSM (Jira API token, ServiceNow account or OAuth client, webhook receiver); rotate it there, then put the new value here (docs/itsm.md).');
  }

  // --- Queues --------------------------------------------------------------------------------
  ack(
    queues.asyncDeadLetter,
    'AwsSolutions-SQS3',
    "This queue is itself a dead-letter queue: EventBridge Scheduler's DLQ, the scheduled-action function's on-failure destination and the execution-ended rule's DLQ (alarmed when not empty).",
  );
}
