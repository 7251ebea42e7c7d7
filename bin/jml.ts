/**
 * The operator CLI. `npm run jml -- <command>` from a clone, or `jml <command>` once linked.
 */
import '../local/quiet.ts';
import { main } from './cli.ts';

process.exitCode = await main(process.argv.slice(2));
