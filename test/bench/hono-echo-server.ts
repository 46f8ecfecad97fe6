// Intermediate baseline for the webhook benchmark: hono on @hono/node-server over the same TLS,
// reading the body with c.req.text() and answering the captured bytes. Between the bare node:https
// server and the webhook, it separates the framework's cost from the webhook's own work (parsing,
// defaulting, validation, logging, metrics).
// Usage: node hono-echo-server.mjs <port> <cert file> <key file> <responses.json>
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const [port, certFile, keyFile, responsesFile] = process.argv.slice(2);
const responses = JSON.parse(readFileSync(responsesFile as string, 'utf8')) as Record<string, { contentType: string; body: string }>;

const app = new Hono();
for (const [path, answer] of Object.entries(responses)) {
  app.post(path, async (c) => {
    await c.req.text();
    return c.body(answer.body, 200, { 'content-type': answer.contentType });
  });
}

serve(
  { fetch: app.fetch, port: Number(port), hostname: '127.0.0.1', createServer, serverOptions: { cert: readFileSync(certFile as string), key: readFileSync(keyFile as string), minVersion: 'TLSv1.2' } },
  () => console.log('hono echo listening'),
);
process.on('SIGTERM', () => process.exit(0));
