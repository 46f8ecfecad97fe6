import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareSync } from 'bcryptjs';
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BCRYPT_COST, bcryptWorkerUrl, hashPasswords, newPassword, PASSWORD_BYTES, usePool } from '../../cronjobs/passwords.ts';
import { isBcryptHash } from '../../functions/validation/formats.ts';
import { bundleOptions } from '../bundle-options.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const passwordsModule = join(root, 'cronjobs/passwords.ts');
const workerModule = join(root, 'cronjobs/bcrypt-worker.ts');

test('newPassword: 192 random bits as 32 base64url characters, never repeating', () => {
  const passwords = Array.from({ length: 1000 }, newPassword);
  for (const password of passwords) {
    assert.match(password, /^[A-Za-z0-9_-]{32}$/);
    assert.is(Buffer.from(password, 'base64url').length, PASSWORD_BYTES);
  }
  assert.ok(PASSWORD_BYTES * 8 >= 128);
  assert.is(new Set(passwords).size, passwords.length);
});

test('hashPasswords inline: bcrypt hashes at the chosen cost that verify the password and nothing else', async () => {
  const passwords = [newPassword(), newPassword()];
  const hashes = await hashPasswords(passwords);
  assert.is(hashes.length, 2);
  hashes.forEach((hash, i) => {
    assert.ok(hash.startsWith(`$2b$0${BCRYPT_COST}$`), hash);
    assert.ok(isBcryptHash(hash));
    assert.ok(compareSync(passwords[i] as string, hash));
    assert.not.ok(compareSync(passwords[1 - i] as string, hash));
  });
  assert.ok((await hashPasswords(['x'], { cost: 5 }))[0]?.startsWith('$2b$05$'));
  assert.equal(await hashPasswords([]), []);
});

test('hashPasswords refuses costs docker_auth would not accept', async () => {
  for (const cost of [3, 32, 4.5]) {
    try {
      await hashPasswords(['x'], { cost });
      assert.unreachable(`cost ${cost} accepted`);
    } catch (error) {
      assert.match(String(error), /cost must be an integer 4–31/);
    }
  }
});

test('usePool: inline for 1–2 hashes and for little work; the pool once the work outweighs starting workers', () => {
  assert.not.ok(usePool(2, 12));
  assert.not.ok(usePool(3, 10));
  assert.ok(usePool(4, 10));
  assert.not.ok(usePool(200, 4));
  assert.ok(usePool(256, 4));
});

test('hashPasswords pool under tsx (the .ts worker): every hash in its place and verifying', async () => {
  const passwords = Array.from({ length: 7 }, newPassword);
  const hashes = await hashPasswords(passwords, { strategy: 'pool', workers: 2 });
  assert.is(hashes.length, passwords.length);
  assert.is(new Set(hashes).size, passwords.length);
  hashes.forEach((hash, i) => assert.ok(compareSync(passwords[i] as string, hash), `hash ${i}`));
  assert.is(bcryptWorkerUrl().pathname, new URL('../../cronjobs/bcrypt-worker.ts', import.meta.url).pathname);
});

test('a failing worker rejects the call instead of hanging; a missing worker: pool throws, auto hashes inline', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iro-bcrypt-'));
  try {
    const broken = join(dir, 'broken.mjs');
    writeFileSync(broken, "throw new Error('worker failed to load');\n");
    try {
      await hashPasswords(['a', 'b', 'c'], { strategy: 'pool', workers: 2, workerUrl: pathToFileURL(broken) });
      assert.unreachable('a broken worker was accepted');
    } catch (error) {
      assert.match(String(error), /worker failed to load/);
    }
    const missing = pathToFileURL(join(dir, 'absent.js'));
    try {
      await hashPasswords(['a'], { strategy: 'pool', workerUrl: missing });
      assert.unreachable('a missing worker was accepted');
    } catch (error) {
      assert.match(String(error), /does not exist/);
    }
    const warnings: string[] = [];
    const original = console.error;
    console.error = (line: string) => warnings.push(line);
    try {
      const passwords = ['a', 'b', 'c', 'd'];
      const hashes = await hashPasswords(passwords, { cost: 10, workers: 2, workerUrl: missing });
      hashes.forEach((hash, i) => assert.ok(compareSync(passwords[i] as string, hash)));
    } finally {
      console.error = original;
    }
    assert.is(warnings.length, 1);
    assert.match(warnings[0] ?? '', /bcrypt worker missing, hashing inline/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bcryptWorkerUrl: beside a bundle, or one directory up from a code-splitting chunk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iro-bcrypt-'));
  try {
    mkdirSync(join(dir, 'chunks'));
    writeFileSync(join(dir, 'bcrypt-worker.js'), '');
    assert.is(bcryptWorkerUrl(pathToFileURL(join(dir, 'rotate.js')).href).pathname, join(dir, 'bcrypt-worker.js'));
    assert.is(bcryptWorkerUrl(pathToFileURL(join(dir, 'chunks', 'x-1.js')).href).pathname, join(dir, 'bcrypt-worker.js'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The Job images run bundles with plain node: no tsx, no node_modules. Build an entry that uses the
// pool and the worker the way test/build.ts does, into a directory without node_modules, and run it.
test('hashPasswords pool in an esbuild bundle run by plain node without node_modules', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iro-bcrypt-bundle-'));
  try {
    const require = createRequire(join(dir, 'x.js'));
    assert.throws(() => require.resolve('bcryptjs'), /Cannot find module/);
    const entry = join(dir, 'entry.ts');
    writeFileSync(
      entry,
      `import { hashPasswords, newPassword } from ${JSON.stringify(passwordsModule)};\n` +
        `const passwords = Array.from({ length: 5 }, newPassword);\n` +
        `const hashes = await hashPasswords(passwords, { strategy: 'pool', workers: 2 });\n` +
        `console.log(JSON.stringify({ passwords, hashes }));\n`,
    );
    // the options the shipped bundles are built with
    await build({ ...bundleOptions, entryPoints: { rotate: entry, 'bcrypt-worker': workerModule }, outdir: join(dir, 'dist'), logLevel: 'error' });
    const run = spawnSync(process.execPath, [join(dir, 'dist', 'rotate.js')], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.is(run.status, 0, run.stderr);
    const { passwords, hashes } = JSON.parse(run.stdout) as { passwords: string[]; hashes: string[] };
    assert.is(hashes.length, 5);
    hashes.forEach((hash, i) => assert.ok(compareSync(passwords[i] as string, hash), `hash ${i}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
