/**
 * SES for approval and exception mails: the sender identity (the address, or its whole domain
 * with Easy DKIM) and a configuration set (reputation metrics, bounces and complaints suppressed
 * at account level). A new account's SES is in the sandbox: it only sends to verified addresses
 * until production access is granted (docs/deploy.md).
 */
import { Stack } from 'aws-cdk-lib';
import * as ses from 'aws-cdk-lib/aws-ses';
import { Construct } from 'constructs';

export interface MailProps {
  from: string;
  identity: 'email' | 'domain';
}

export class Mail extends Construct {
  readonly from: string;
  readonly identity: ses.EmailIdentity;
  readonly identityArn: string;
  readonly configurationSet: ses.ConfigurationSet;
  readonly configurationSetArn: string;

  constructor(scope: Construct, id: string, props: MailProps) {
    super(scope, id);
    this.from = props.from;
    const domain = props.from.slice(props.from.lastIndexOf('@') + 1);
    this.configurationSet = new ses.ConfigurationSet(this, 'ConfigurationSet', {
      reputationMetrics: true,
      suppressionReasons: ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
    });
    this.identity = new ses.EmailIdentity(this, 'Identity', {
      identity: props.identity === 'domain' ? ses.Identity.domain(domain) : ses.Identity.email(props.from),
      configurationSet: this.configurationSet,
    });
    const stack = Stack.of(this);
    this.identityArn = stack.formatArn({ service: 'ses', resource: 'identity', resourceName: this.identity.emailIdentityName });
    this.configurationSetArn = stack.formatArn({
      service: 'ses',
      resource: 'configuration-set',
      resourceName: this.configurationSet.configurationSetName,
    });
  }
}
