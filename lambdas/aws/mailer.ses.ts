/**
 * Mailer on Amazon SES (API v2 `SendEmail`, simple content): a text and an HTML part, UTF-8,
 * from the configured sender identity, optionally through a configuration set (event
 * publishing, suppression, dedicated IPs). The run and approval ids travel as message tags, so
 * SES events can be joined to a run without putting anything in the mail itself.
 *
 * SES answers `MessageRejected` for content it will not send, `MailFromDomainNotVerifiedException`
 * / `AccountSuspendedException` / `SendingPausedException` for setup problems: those are raised
 * as `MailRejected` with SES's reason (never the mail body, which may carry a link token).
 */
import type { SESv2Client } from '@aws-sdk/client-sesv2';
import type { Mailer, OutgoingMail } from '#app/ports';
import { JmlError } from '#core/errors';
import type { WiringContext } from './bootstrap.ts';
import { ENV, required } from './config.ts';
import { once, type Lazy } from './lazy.ts';

const sdk = once(() => import('@aws-sdk/client-sesv2'));

export class MailRejected extends JmlError {}

export interface SesMailerOptions {
  client: Lazy<SESv2Client>;
  /** Verified sender identity (address), e.g. `JML Access <access@acme.example>` or `access@acme.example`. */
  from: string;
  configurationSet?: string;
}

const REJECTIONS = new Set([
  'MessageRejected',
  'MailFromDomainNotVerifiedException',
  'AccountSuspendedException',
  'SendingPausedException',
  'BadRequestException',
  'NotFoundException',
]);

/** SES message tag values: `[A-Za-z0-9_-]`, up to 256 characters. */
function tagValue(v: string): string {
  return v.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 256);
}

export class SesMailer implements Mailer {
  private readonly client: () => Promise<SESv2Client>;

  constructor(private readonly options: SesMailerOptions) {
    this.client = once(options.client);
  }

  async send(mail: OutgoingMail): Promise<{ messageId: string }> {
    if (!mail.to.length) throw new MailRejected('mail has no recipient');
    const tags = [
      ...(mail.runId ? [{ Name: 'runId', Value: tagValue(mail.runId) }] : []),
      ...(mail.approvalId ? [{ Name: 'approvalId', Value: tagValue(mail.approvalId) }] : []),
    ];
    const [{ SendEmailCommand }, client] = await Promise.all([sdk(), this.client()]);
    try {
      const out = await client.send(
        new SendEmailCommand({
          FromEmailAddress: this.options.from,
          Destination: { ToAddresses: mail.to },
          Content: {
            Simple: {
              Subject: { Data: mail.subject, Charset: 'UTF-8' },
              Body: { Text: { Data: mail.text, Charset: 'UTF-8' }, Html: { Data: mail.html, Charset: 'UTF-8' } },
            },
          },
          ...(this.options.configurationSet ? { ConfigurationSetName: this.options.configurationSet } : {}),
          ...(tags.length ? { EmailTags: tags } : {}),
        }),
      );
      if (!out.MessageId) throw new MailRejected('SES accepted the mail but returned no MessageId');
      return { messageId: out.MessageId };
    } catch (e) {
      const name = (e as { name?: string })?.name ?? '';
      if (REJECTIONS.has(name)) throw new MailRejected(`SES refused the mail (${name}): ${(e as Error).message}`, { cause: e });
      throw e;
    }
  }
}

/** Entry wiring: the sender from `JML_MAIL_FROM`, the configuration set if any. */
export function wireMailer({ config }: WiringContext): Mailer {
  const mail = required(config.mail, ENV.mailFrom, 'the SES sender identity');
  return new SesMailer({ client: async () => new (await sdk()).SESv2Client({}), from: mail.from, ...(mail.configurationSet ? { configurationSet: mail.configurationSet } : {}) });
}
