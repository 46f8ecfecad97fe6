// One JSON line per event on stdout, in the shape functions/log-line.ts gives every log line.
import { logLine, type Logger } from '../functions/log-line.ts';

export { errorMessage } from '../functions/log-line.ts';

export const log: Logger = (level, msg, fields) => console.log(logLine(new Date(), level, msg, fields));
