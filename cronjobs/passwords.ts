// Passwords for rotated registry accounts and their bcrypt hashes (only hashes reach the API).
//
// Cost: BCRYPT_COST = 4, the minimum docker_auth (golang.org/x/crypto/bcrypt) and our validation
// accept. bcrypt's work factor only slows down guessing of weak passwords; these are 192 random
// bits, which no hash speed makes guessable. What the cost does buy here is CPU: docker_auth runs
// one bcrypt comparison per token request (every push and pull; at cost 10 ~50–70 ms of a
// container that requests 50m CPU), anyone who can reach /auth/token can make it run them with the
// predictable account names, and every rotation pays it once per CR. User-written static accounts
// keep whatever cost their own hash has.
//
// Many hashes at once (a rotation of every CR) run in a pool of worker threads, one per available
// core, once the work outweighs starting the workers (~50–200 ms each on 2 busy cores; measured
// break-even: ~200 hashes at cost 4, ~3 at cost 10). The worker is the sibling module
// bcrypt-worker: `.ts` under tsx, `.js` when bundled, where the build writes dist/bcrypt-worker.js
// next to the entry points. (Re-entering the entry's own bundle in the worker would run the whole
// Job again inside it; an eval'd worker that requires bcryptjs needs a node_modules the image lacks.)
import { hashSync } from 'bcryptjs';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { HashReply, HashRequest } from './bcrypt-worker.ts';

export const BCRYPT_COST = 4;
/** 24 bytes = 192 bits from the CSPRNG; 32 characters of base64url, far below bcrypt's 72-byte limit. */
export const PASSWORD_BYTES = 24;
/** Up to this many hashes are always computed inline. */
export const INLINE_MAX = 2;
/** The pool starts at this much work, counted in cost-4 hashes (~2 ms each); each cost step doubles it. */
export const POOL_MIN_WORK = 256;
/** Name of the worker's bundle in dist/ (test/build.ts entry point). */
export const BCRYPT_WORKER_ENTRY = 'bcrypt-worker';

export function newPassword(): string {
  return randomBytes(PASSWORD_BYTES).toString('base64url');
}

export interface HashOptions {
  /** bcrypt cost, 4–31; default BCRYPT_COST */
  cost?: number;
  /** worker threads at most; default os.availableParallelism() */
  workers?: number;
  /** auto: the pool when usePool() says so and the worker exists; inline / pool: force one (pool throws without a worker) */
  strategy?: 'auto' | 'inline' | 'pool';
  /** the worker module; default bcryptWorkerUrl() */
  workerUrl?: URL;
}

/** bcrypt hashes of the passwords, in their order. */
export async function hashPasswords(passwords: readonly string[], options: HashOptions = {}): Promise<string[]> {
  const cost = options.cost ?? BCRYPT_COST;
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new Error(`bcrypt cost must be an integer 4–31, got ${cost}`);
  const strategy = options.strategy ?? 'auto';
  const workerUrl = options.workerUrl ?? bcryptWorkerUrl();
  const size = Math.min(options.workers ?? availableParallelism(), passwords.length);
  if (strategy === 'pool') {
    if (!existsSync(fileURLToPath(workerUrl))) throw new Error(`bcrypt worker ${fileURLToPath(workerUrl)} does not exist`);
    return hashInPool(passwords, cost, Math.max(size, 1), workerUrl);
  }
  if (strategy === 'inline' || size < 2 || !usePool(passwords.length, cost)) return passwords.map((p) => hashSync(p, cost));
  if (!existsSync(fileURLToPath(workerUrl))) {
    // still correct, only slower; say so once per call instead of failing a rotation
    console.error(JSON.stringify({ level: 'warn', msg: 'bcrypt worker missing, hashing inline', worker: fileURLToPath(workerUrl) }));
    return passwords.map((p) => hashSync(p, cost));
  }
  return hashInPool(passwords, cost, size, workerUrl);
}

/** Whether hashing `count` passwords at `cost` is worth starting worker threads. */
export function usePool(count: number, cost: number): boolean {
  return count > INLINE_MAX && count * 2 ** (cost - 4) >= POOL_MIN_WORK;
}

/**
 * The worker module beside `base` (this module under tsx, the entry's bundle when bundled), or one
 * directory up when `base` is a code-splitting chunk in dist/chunks/.
 */
export function bcryptWorkerUrl(base: string = import.meta.url): URL {
  const extension = /\.[cm]?[jt]s$/.exec(new URL(base).pathname)?.[0] ?? '.js';
  const candidates = [`./${BCRYPT_WORKER_ENTRY}${extension}`, `../${BCRYPT_WORKER_ENTRY}${extension}`].map((path) => new URL(path, base));
  return candidates.find((url) => existsSync(fileURLToPath(url))) ?? (candidates[0] as URL);
}

// Each worker takes the next password when it returns a hash, so a slow worker never holds up others.
async function hashInPool(passwords: readonly string[], cost: number, size: number, url: URL): Promise<string[]> {
  const hashes: string[] = new Array<string>(passwords.length);
  let next = 0;
  const workers = Array.from({ length: size }, () => new Worker(url, { workerData: { cost } }));
  const drain = (worker: Worker) =>
    new Promise<void>((resolve, reject) => {
      const feed = () => {
        if (next >= passwords.length) return resolve();
        const request: HashRequest = { index: next, password: passwords[next] as string };
        next += 1;
        worker.postMessage(request);
      };
      worker.on('message', ({ index, hash }: HashReply) => {
        hashes[index] = hash;
        feed();
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`bcrypt worker exited early with code ${code}`)));
      feed();
    });
  try {
    await Promise.all(workers.map(drain));
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
  return hashes;
}
