// The admission routes' body-size limit: a body larger than maxBytes → 413, and the connection is
// closed, since the rest of the body is not read.
import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';

/**
 * A request header. Served by @hono/node-server, the headers Node parsed are at hand in c.env
 * (c.req.header would first build a web Headers object from them, on every admission); under
 * app.request() there are only the web headers.
 */
function requestHeader(c: Context, name: string): string | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming?.headers === undefined) return c.req.header(name);
  const value = incoming.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Refuses bodies over maxBytes with 413; `refused` is told of each (to count and log it). */
export function admissionBodyLimit(maxBytes: number, refused: () => void = () => {}): MiddlewareHandler {
  const tooLarge = (c: Context) => {
    refused();
    // the rest of the body is not read, so this connection cannot carry another request
    return c.json({ error: `request body larger than ${maxBytes} bytes` }, 413, { connection: 'close' });
  };
  const streamingLimit = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return (c, next) => {
    // The API server always sends Content-Length: checking the header leaves the body untouched
    // for @hono/node-server's fast path (bodyLimit turns it into a counted web stream, which
    // costs a third of the throughput). Bodies without a length are counted as they stream.
    const length = requestHeader(c, 'content-length');
    if (length !== undefined && /^[0-9]+$/.test(length) && requestHeader(c, 'transfer-encoding') === undefined) {
      return Number(length) > maxBytes ? Promise.resolve(tooLarge(c)) : next();
    }
    return streamingLimit(c, next);
  };
}
