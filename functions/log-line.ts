// The one shape of a log line, shared by the webhook and the Jobs: a JSON object per event,
// `{time, level, msg, ...fields}`. Writing the line is the caller's business (the webhook batches
// its writes); the time is a parameter, so this stays pure.

export type LogLevel = 'info' | 'warn' | 'error';

/** Logs one event. Callers pass names, reasons and counts — never secret material. */
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** One event as a JSON line, without the trailing newline. */
export function logLine(time: Date, level: LogLevel, msg: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ time: time.toISOString(), level, msg, ...fields });
}

/** The message of a thrown value: anything can be thrown, an Error is only the usual case. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
