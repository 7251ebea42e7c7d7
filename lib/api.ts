/**
 * The REST API (API Gateway, Lambda proxy integrations):
 *   POST /hris/events, POST /hris/bamboohr   HRIS webhooks (HMAC-signed; optional IP allow-list)
 *   GET|POST /okta/events                    Okta event hook (Authorization secret)
 *   GET|HEAD|POST /approvals/{id}            approval links (signed single-use tokens)
 *   GET /runs/{runId}, GET /runs, GET /exceptions   read API, IAM-authorised
 *   POST /exception-grants, GET /exception-grants/{grantId}   operator API, IAM-authorised
 *
 * Edge checks before any Lambda runs: required signature / authorization headers and query
 * parameters (request validator), stage throttling, access logs (JSON, no headers or bodies),
 * execution logs at ERROR without data tracing (bodies carry signatures and personal data),
 * X-Ray. Body size: API Gateway's own limit is 10 MB; each webhook answers 413 above its limit
 * (256 KiB for HR events) before parsing. Optional WAF web ACL (per-IP rate limit, AWS known
 * bad inputs and IP reputation lists).
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { BAMBOOHR_SIGNATURE_HEADER, BAMBOOHR_TIMESTAMP_HEADER } from '#core/bamboohr';
import { CANONICAL_SIGNATURE_HEADER, CANONICAL_TIMESTAMP_HEADER } from '#core/signature';

export const API_STAGE = 'v1';
const OKTA_CHALLENGE_HEADER = 'X-Okta-Verification-Challenge';

export interface ApiFunctions {
  hrisWebhook: lambda.IFunction;
  bambooHrWebhook: lambda.IFunction;
  oktaEventHook: lambda.IFunction;
  approvals: lambda.IFunction;
  readApi: lambda.IFunction;
  exceptionGrants: lambda.IFunction;
}

export interface ApiProps {
  throttle: { rateLimit: number; burstLimit: number };
  hrisAllowedCidrs: string[];
  waf: boolean;
  logRetention: logs.RetentionDays;
}

export class Api extends Construct {
  readonly api: apigw.RestApi;
  readonly webAcl?: wafv2.CfnWebACL;
  /** Methods without an authorizer (they authenticate the caller themselves), for the cdk-nag acknowledgements. */
  readonly publicMethods: apigw.Method[] = [];
  /** IAM-authorised methods (read API, exception grants). */
  readonly readMethods: apigw.Method[] = [];

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    this.api = new apigw.RestApi(this, 'Api', {
      description: 'jml: HRIS webhooks, Okta event hook, approval links, read API',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      policy: resourcePolicy(props.hrisAllowedCidrs),
      deployOptions: {
        stageName: API_STAGE,
        accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields({
          caller: true,
          httpMethod: true,
          ip: true,
          protocol: true,
          requestTime: true,
          resourcePath: true,
          responseLength: true,
          status: true,
          user: true,
        }),
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        metricsEnabled: true,
        tracingEnabled: true,
        throttlingRateLimit: props.throttle.rateLimit,
        throttlingBurstLimit: props.throttle.burstLimit,
      },
    });
    if (props.waf) {
      this.webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
        scope: 'REGIONAL',
        defaultAction: { allow: {} },
        visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'jml-api', sampledRequestsEnabled: false },
        rules: [
          {
            name: 'rate-per-ip',
            priority: 0,
            action: { block: {} },
            statement: { rateBasedStatement: { limit: 2000, aggregateKeyType: 'IP' } },
            visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'jml-rate-per-ip', sampledRequestsEnabled: false },
          },
          managedRule('AWSManagedRulesAmazonIpReputationList', 1),
          managedRule('AWSManagedRulesKnownBadInputsRuleSet', 2),
        ],
      });
      new wafv2.CfnWebACLAssociation(this, 'WebAclAssociation', {
        resourceArn: this.api.deploymentStage.stageArn,
        webAclArn: this.webAcl.attrArn,
      });
    }
  }

  /** The routes (the functions exist only once the API's base URL could be given to them). */
  addRoutes(f: ApiFunctions): void {
    const validator = this.api.addRequestValidator('Parameters', { validateRequestParameters: true, validateRequestBody: false });
    const integration = (fn: lambda.IFunction) => new apigw.LambdaIntegration(fn, { proxy: true, allowTestInvoke: false });
    const headers = (...names: string[]) => Object.fromEntries(names.map((n) => [`method.request.header.${n}`, true]));
    const open = (resource: apigw.IResource, method: string, fn: lambda.IFunction, params: Record<string, boolean> = {}) => {
      const m = resource.addMethod(method, integration(fn), {
        authorizationType: apigw.AuthorizationType.NONE,
        ...(Object.keys(params).length ? { requestParameters: params, requestValidator: validator } : {}),
      });
      this.publicMethods.push(m);
      return m;
    };
    const iamOnly = (resource: apigw.IResource, fn: lambda.IFunction, params: Record<string, boolean> = {}, method = 'GET') => {
      const m = resource.addMethod(method, integration(fn), {
        authorizationType: apigw.AuthorizationType.IAM,
        ...(Object.keys(params).length ? { requestParameters: params, requestValidator: validator } : {}),
      });
      this.readMethods.push(m);
      return m;
    };

    const hris = this.api.root.addResource('hris');
    open(hris.addResource('events'), 'POST', f.hrisWebhook, headers(CANONICAL_TIMESTAMP_HEADER, CANONICAL_SIGNATURE_HEADER));
    open(hris.addResource('bamboohr'), 'POST', f.bambooHrWebhook, headers(BAMBOOHR_TIMESTAMP_HEADER, BAMBOOHR_SIGNATURE_HEADER));

    const okta = this.api.root.addResource('okta').addResource('events');
    open(okta, 'GET', f.oktaEventHook, headers('Authorization', OKTA_CHALLENGE_HEADER));
    open(okta, 'POST', f.oktaEventHook, headers('Authorization'));

    const approval = this.api.root.addResource('approvals').addResource('{id}');
    for (const method of ['GET', 'HEAD', 'POST']) open(approval, method, f.approvals, { 'method.request.path.id': true });

    const runs = this.api.root.addResource('runs');
    iamOnly(runs, f.readApi, { 'method.request.querystring.employeeId': true });
    iamOnly(runs.addResource('{runId}'), f.readApi, { 'method.request.path.runId': true });
    const exceptions = this.api.root.addResource('exceptions');
    iamOnly(exceptions, f.readApi);
    iamOnly(exceptions.addResource('{exceptionId}').addResource('resolve'), f.exceptionGrants, { 'method.request.path.exceptionId': true }, 'POST');

    const grants = this.api.root.addResource('exception-grants');
    iamOnly(grants, f.exceptionGrants, {}, 'POST');
    iamOnly(grants.addResource('{grantId}'), f.exceptionGrants, { 'method.request.path.grantId': true });
  }

  /**
   * `https://<api id>.execute-api.<region>.<suffix>/v1`, built from the API id and the stage
   * name: the functions' environment may hold it without depending on the stage (whose
   * deployment depends on the methods, which depend on the functions — a cycle).
   */
  get baseUrl(): string {
    const stack = Stack.of(this);
    return `https://${this.api.restApiId}.execute-api.${stack.region}.${stack.urlSuffix}/${API_STAGE}`;
  }
}

function managedRule(name: string, priority: number): wafv2.CfnWebACL.RuleProperty {
  return {
    name,
    priority,
    overrideAction: { none: {} },
    statement: { managedRuleGroupStatement: { vendorName: 'AWS', name } },
    visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: `jml-${name}`, sampledRequestsEnabled: false },
  };
}

/**
 * With an HRIS allow-list: the public routes open to anyone (they authenticate themselves), the
 * read routes only to this account's IAM principals (IAM auth still applies), and the HRIS
 * routes denied to any source outside the list. Without one: no resource policy (IAM auth then
 * admits only this account's principals to the read routes).
 */
function resourcePolicy(cidrs: string[]): iam.PolicyDocument | undefined {
  if (!cidrs.length) return undefined;
  const invoke = (paths: string[]) => paths.map((p) => `execute-api:/*/${p}`);
  return new iam.PolicyDocument({
    statements: [
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        principals: [new iam.AnyPrincipal()],
        actions: ['execute-api:Invoke'],
        resources: invoke(['POST/hris/*', '*/okta/events', '*/approvals/*']),
      }),
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        principals: [new iam.AccountRootPrincipal()],
        actions: ['execute-api:Invoke'],
        resources: invoke(['GET/runs', 'GET/runs/*', 'GET/exceptions', '*/exception-grants', '*/exception-grants/*']),
      }),
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['execute-api:Invoke'],
        resources: invoke(['POST/hris/*']),
        conditions: { NotIpAddress: { 'aws:SourceIp': cidrs } },
      }),
    ],
  });
}
