// Worker thread of the bcrypt pool (passwords.ts): hashes one password per message. It is a file of
// its own so that, bundled, it is a small dist/bcrypt-worker.js beside the entry points instead of a
// second copy of a whole Job entry point running inside the worker.
import { hashSync } from 'bcryptjs';
import { parentPort, workerData } from 'node:worker_threads';

export interface HashRequest {
  index: number;
  password: string;
}

export interface HashReply {
  index: number;
  hash: string;
}

const { cost } = workerData as { cost: number };

parentPort?.on('message', ({ index, password }: HashRequest) => {
  const reply: HashReply = { index, hash: hashSync(password, cost) };
  parentPort?.postMessage(reply);
});
