/**
 * The operator CLI's command table (`bin/jml.ts` runs it). `npm run jml -- <command>` from a clone, or `jml <command>` once linked.
 */
import { diffCommand, explainCommand, planCommand, policyCheck } from './commands/policy.ts';
import { UsageError, reportError } from './commands/io.ts';
import { grantExceptionCommand } from './commands/grant-exception.ts';
import { setConnection, takeConnectionOptions } from './commands/remote.ts';
import {
  clockCommand,
  decideCommand,
  evidenceVerifyCommand,
  exceptionsCommand,
  resolveCommand,
  kpisCommand,
  runCommand,
  reconcileCommand,
  runsCommand,
  sendEventCommand,
} from './commands/runtime.ts';

const HELP = `jml — Joiner / Mover / Leaver automation

Usage: jml <command> [options]

Policy
  policy check [file]                      validate a policy, print its mappingVersion and a summary
  policy explain --worker w.json           why this person gets each entitlement (provenance)
  policy diff <old> <new> --roster r.csv   who gains and loses what if the policy changes
  plan --worker w.json | --event e.json [--actual a.json] [--policy file] [--lifecycle l]
                                           desired state with provenance and the ordered plan

Runtime (the local runtime by default; JML_URL=http://… for another; --stack for a deployed one)
  send-event <file>                        sign and post an HR event (or an array of them)
  runs --employee <id>                     a person's runs
  run <runId>                              one run's timeline, steps, approvals, exceptions
  exceptions [--status open|resolved]      exceptions with their owners, reasons and tickets
  resolve <exceptionId> --resolution "…" --by <who>
                                           record how an exception was resolved (closes its ticket)
  evidence verify <runId | bundle-dir>     recompute hashes and the person's hash chain
  grant-exception --employee <id> --bundle <name> --reason "…" --days N
                                           re-apply a bundle for a bounded time (app owner approves by link)
  reconcile [--now] [--timeout 1h]         start the nightly reconciliation as its schedule does (once per
                                           UTC day); --now: wait for it and print its report (a stack:
                                           invokes the scheduled-action function, follows the execution)
  kpis [--since 7d]                        time to disable, revocation completeness, exceptions, drift
                                           (a stack: CloudWatch over --since; locally: since start)

Local runtime only
  approve <approvalId> | reject <approvalId> --rationale "…"
                                           decide through the emailed link in the outbox
  clock advance <N>m|h|d                   move the local clock; due schedules fire

Options
  --json        machine-readable output
  --policy F    policy file (default config/access-policy.yaml)
  --stack S     a deployed stack (env JML_STACK): API URL, functions and state machines from its
                CloudFormation outputs; requests to the IAM-authorised routes signed with SigV4;
                reconcile and kpis call Lambda, Step Functions and CloudWatch (docs/deploy.md)
  --region R    its region (env AWS_REGION, or the profile's)
  --profile P   AWS profile for credentials (env AWS_PROFILE; default: the standard chain)
`;

type Command = (args: string[]) => number | Promise<number>;
const commands: Record<string, Command> = {
  'policy check': policyCheck,
  'policy explain': explainCommand,
  'policy diff': diffCommand,
  plan: planCommand,
  'send-event': sendEventCommand,
  runs: runsCommand,
  run: runCommand,
  exceptions: exceptionsCommand,
  resolve: resolveCommand,
  approve: decideCommand('approve'),
  reject: decideCommand('reject'),
  clock: clockCommand,
  'evidence verify': evidenceVerifyCommand,
  kpis: kpisCommand,
  'grant-exception': grantExceptionCommand,
  reconcile: reconcileCommand,
};

export async function main(argv: string[]): Promise<number> {
  try {
    const { argv: args, connection } = takeConnectionOptions(argv);
    setConnection(connection);
    if (!args.length || args[0] === 'help' || args[0] === '--help' || args[0] === '-h') {
      console.log(HELP);
      return 0;
    }
    const two = args.slice(0, 2).join(' ');
    const [name, rest] = commands[two] ? [two, args.slice(2)] : [args[0]!, args.slice(1)];
    const command = commands[name];
    if (!command) throw new UsageError(`unknown command "${args.slice(0, 2).join(' ')}" — run jml help`);
    return await command(rest);
  } catch (e) {
    return reportError(e);
  }
}

