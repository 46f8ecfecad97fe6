// Shared shape of every Job entry point: run, log a failure as one JSON line, exit with a code.
import { errorMessage, log } from './log.ts';

export function runEntryPoint(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      log('error', `${name} failed`, { error: errorMessage(error) });
      process.exit(2);
    },
  );
}
