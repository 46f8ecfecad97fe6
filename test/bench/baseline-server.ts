// The webhook benchmark's baseline: a bare node:https server with the webhook's certificate that reads
// each request body and answers with the bytes the webhook answered for that path (captured before
// the runs). Anything the webhook costs beyond this is hono, parsing, defaulting/validation, logging.
// Usage: node baseline-server.mjs <port> <cert file> <key file> <responses.json>
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

interface CapturedResponse {
  contentType: string;
  body: string;
}

const [port, certFile, keyFile, responsesFile] = process.argv.slice(2);
const responses = JSON.parse(readFileSync(responsesFile as string, 'utf8')) as Record<string, CapturedResponse>;
const bodies = new Map(Object.entries(responses).map(([path, r]) => [path, { contentType: r.contentType, body: Buffer.from(r.body) }]));

const server = createServer({ cert: readFileSync(certFile as string), key: readFileSync(keyFile as string), minVersion: 'TLSv1.2' }, (req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    const answer = bodies.get(req.url ?? '');
    if (!answer) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': answer.contentType, 'content-length': answer.body.length });
    res.end(answer.body);
  });
});
server.listen(Number(port), '127.0.0.1', () => console.log('baseline listening'));
process.on('SIGTERM', () => process.exit(0));
