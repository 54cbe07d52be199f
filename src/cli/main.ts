#!/usr/bin/env node
/**
 * The `graft` command. Each command lives in its own file and registers itself; to add one, import its
 * CommandModule and append it to COMMANDS. Exit codes: see cli/errors.ts.
 */
import { Command, CommanderError } from 'commander';
import { GraftError, isGraftError } from '../errors.js';
import { GRAFT_VERSION } from '../version.js';
import { positiveIntArg, type CliContext, type CommandModule, type OutStream } from './common.js';
import { EXIT, reportError } from './errors.js';
import { evalCommand } from './eval.js';
import { inspectCommand } from './inspect.js';
import { predictCommand } from './predict.js';
import { trainCommand } from './train.js';

const COMMANDS: readonly CommandModule[] = [predictCommand, inspectCommand, trainCommand, evalCommand];

function buildProgram(ctx: CliContext): Command {
  const program = new Command('graft')
    .description('Transfer learning for image classifiers on onnxruntime: predict with a pretrained model, train a new head, or fine-tune.')
    .version(GRAFT_VERSION, '-V, --version')
    .option('--threads <n>', 'CPU threads for onnxruntime (default: all cores)', positiveIntArg('--threads'))
    .option('--offline', 'never touch the network; use only cached models (also GRAFT_OFFLINE=1)')
    .option('--cache-dir <dir>', 'where converted builtins and downloads are kept (default $GRAFT_CACHE or ~/.cache/graft)')
    .option('-q, --quiet', 'no progress or warnings on stderr')
    .showHelpAfterError('(run graft --help, or graft <command> --help)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void ctx.out.write(s),
      writeErr: (s) => void ctx.err.write(s),
      outputError: (s, w) => w(`graft: ${s.replace(/^error: /, '')}`),
    });
  for (const c of COMMANDS) c.register(program, ctx);
  return program;
}

/** Runs the CLI on `argv` (node, script, ...args) and returns the exit code. */
export async function main(argv: readonly string[], io: { out: OutStream; err: OutStream; env?: NodeJS.ProcessEnv; signal: AbortSignal }): Promise<number> {
  const ctx: CliContext = { out: io.out, err: io.err, signal: io.signal, env: io.env ?? process.env, exitCode: EXIT.OK };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync([...argv]);
    return ctx.exitCode;
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return EXIT.OK; // --help, --version
    if (io.signal.aborted && isGraftError(io.signal.reason) && io.signal.reason.subject === STDOUT_CLOSED) return EXIT_PIPE;
    return reportError(e, (s) => void io.err.write(s), ctx.env);
  }
}

/** Abort reason when the reader of stdout went away (`graft predict dir | head`): end quietly, like other Unix tools. */
const STDOUT_CLOSED = '<stdout>';
const EXIT_PIPE = 141;

const controller = new AbortController();
let interrupts = 0;
const onSigint = () => {
  if (++interrupts > 1) process.exit(EXIT.ABORTED);
  process.stderr.write('\ngraft: interrupted; stopping (Ctrl-C again to quit at once)\n');
  controller.abort(new GraftError('ABORTED', 'Interrupted (Ctrl-C).'));
};
process.on('SIGINT', onSigint);
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  controller.abort(new GraftError('ABORTED', 'stdout was closed.', { subject: STDOUT_CLOSED }));
});

process.exitCode = await main(process.argv, { out: process.stdout, err: process.stderr, signal: controller.signal });
process.off('SIGINT', onSigint);
