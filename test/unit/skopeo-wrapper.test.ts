// The sandbox's skopeo wrapper runs the real skopeo, never itself, even with its own directory
// first on PATH (as `npm start`'s export line puts it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realSkopeo, skopeoWrapper } from '../sandbox/skopeo-wrapper.ts';

const missing = ['skopeo', 'bwrap'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
if (missing.length > 0) console.log(`SKIP skopeo wrapper run: ${missing.join(', ')} not installed (test/binaries/build.sh installs them)`);
const withTools = missing.length > 0 ? test.skip : test;

const dir = mkdtempSync(join(tmpdir(), 'iro-skopeo-wrapper-'));
const resolvConf = join(dir, 'resolv.conf');
writeFileSync(resolvConf, 'nameserver 127.0.0.1\n');

test('realSkopeo never picks the wrapper, wherever its directory is on PATH', () => {
  const wrapper = join(dir, 'skopeo');
  writeFileSync(wrapper, '#!/bin/sh\nexit 99\n');
  chmodSync(wrapper, 0o755);
  const found = realSkopeo(dir, `${dir}:${process.env.PATH ?? ''}`);
  assert.is.not(found, wrapper);
  assert.ok(found.startsWith('/'), found);
  assert.throws(() => skopeoWrapper(resolvConf, 'skopeo'), /absolute path/);
});

withTools('the wrapper runs the real skopeo: --version through it with its directory first on PATH, bounded', () => {
  const wrapper = join(dir, 'skopeo');
  writeFileSync(wrapper, skopeoWrapper(resolvConf, realSkopeo(dir)));
  chmodSync(wrapper, 0o755);
  const started = Date.now();
  // `timeout` bounds a wrapper that would call itself; -k ends what ignores TERM
  const run = spawnSync('timeout', ['-k', '2', '10', 'skopeo', '--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` } });
  assert.is(run.status, 0, `${run.status} ${run.stderr}`);
  assert.match(run.stdout, /^skopeo version \d+\.\d+/);
  assert.ok(Date.now() - started < 10_000);
  assert.match(readFileSync(wrapper, 'utf8'), /'\/[^']*skopeo' "\$@"$/m, 'the real skopeo by absolute path');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
