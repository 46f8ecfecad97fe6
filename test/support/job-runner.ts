// The kubelet (and Job controller) stand-in for batch/v1 Jobs: no Job controller or kubelet runs
// against the test control plane, so this runs each new Job of a namespace as a local process,
// from the Job's OWN pod template — first container's command/args/env — and records the result
// on the Job's status subresource the way the Job controller would. Pods are never created.
//
// - Image paths: `/app/<path>` (the container image's layout) maps to `<repoRoot>/<path>`, and
//   `node` to this process's Node.js (≥ 22), so `node /app/dist/reconcile.js` runs the bundle.
// - Env: `value`, `valueFrom` (configMapKeyRef, secretKeyRef, fieldRef) and `envFrom`
//   (configMapRef, secretRef, prefix, optional) are resolved from the API; `$(VAR)` references
//   are expanded as the kubelet does.
// - Credentials: a real token for the pod's `serviceAccountName` (TokenRequest API) in a kubeconfig
//   passed as KUBECONFIG, so the process has exactly the permissions our RBAC gives it.
// - Job semantics: `backoffLimit` retries, `activeDeadlineSeconds` (the process is killed),
//   `suspend`; Jobs created from CronJobs (`kubectl create job --from=cronjob/x`) are plain Jobs.
// - Status: startTime + active, then succeeded + SuccessCriteriaMet → Complete + completionTime,
//   or failed + FailureTarget → Failed: the sequence Kubernetes ≥ 1.31 accepts (it refuses
//   Complete without SuccessCriteriaMet and Failed without FailureTarget).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import { apiMessage, kubeApi, serviceAccountKubeconfig } from './kube-api.ts';
import { delay } from './processes.ts';

export interface JobRunnerOptions {
  /** admin kubeconfig: lists Jobs, reads ConfigMaps/Secrets, requests tokens, writes Job status */
  kubeconfig: string;
  /** the namespace whose Jobs are run */
  namespace: string;
  /** what `/app/` in the container maps to */
  repoRoot: string;
  /** extra environment for every process (the container's own env wins) */
  env?: Record<string, string>;
  /** only Jobs this returns true for are run (default: all) */
  filter?: (job: JobObject) => boolean;
  /** how often Jobs are listed; default 200 ms */
  pollMs?: number;
  /** Jobs run at the same time; default 4 */
  parallelism?: number;
  /** pause between a failed attempt and the next; default 200 ms (the Job controller backs off 10 s, 20 s, …) */
  retryDelayMs?: number;
}

export interface JobAttempt {
  startedAt: Date;
  finishedAt?: Date;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface JobRun {
  namespace: string;
  name: string;
  uid: string;
  serviceAccount: string;
  /** the container's command + args after `$(VAR)` expansion, as in the Job */
  containerArgv: string[];
  /** what was executed locally */
  argv: string[];
  /** the container's environment as resolved (without KUBECONFIG) */
  env: Record<string, string>;
  attempts: JobAttempt[];
  /** undefined while queued or running */
  result?: 'Complete' | 'Failed';
  /** why it failed: BackoffLimitExceeded, DeadlineExceeded, or what kept it from starting */
  reason?: string;
  message?: string;
  /** resolves when the Job has finished (or the runner stopped) */
  done: Promise<JobRun>;
  /** stdout and stderr of every attempt */
  logs(): string;
}

export interface JobRunner {
  /** kills running processes (their Jobs are recorded Failed) and stops polling */
  stop(): Promise<void>;
  /** resolves when no Job of the namespace (that passes the filter) is pending or running */
  waitIdle(timeoutMs?: number): Promise<void>;
  /** resolves with the run of the named Job once it finished */
  waitForJob(name: string, timeoutMs?: number): Promise<JobRun>;
  /** every run so far, in start order */
  runs(): JobRun[];
  /** the latest run of the named Job */
  run(name: string): JobRun | undefined;
  /** stdout+stderr of the latest run of the named Job ('' when it never ran) */
  logs(name: string): string;
  /** how many Jobs were picked up */
  readonly jobsRun: number;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: unknown;
  };
}

interface EnvFromSource {
  prefix?: string;
  configMapRef?: { name: string; optional?: boolean };
  secretRef?: { name: string; optional?: boolean };
}

interface Container {
  name: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  envFrom?: EnvFromSource[];
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastProbeTime?: string;
  lastTransitionTime?: string;
}

export interface JobObject {
  metadata: { name: string; namespace: string; uid: string; creationTimestamp?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    suspend?: boolean;
    backoffLimit?: number;
    activeDeadlineSeconds?: number;
    template: { metadata?: { labels?: Record<string, string> }; spec: { serviceAccountName?: string; containers: Container[] } };
  };
  status?: { startTime?: string; conditions?: Condition[]; failed?: number; succeeded?: number };
}

const MAX_LOG = 1024 * 1024;
const DEFAULT_BACKOFF_LIMIT = 6;

/** Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` escapes, the rest stays. */
export function expandVariables(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) =>
    match === '$$' ? '$' : name !== undefined && name in vars ? (vars[name] as string) : match);
}

function finished(job: JobObject): boolean {
  return (job.status?.conditions ?? []).some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
}

function condition(type: string, reason: string, message: string, at: string): Condition {
  return { type, status: 'True', reason, message, lastProbeTime: at, lastTransitionTime: at };
}

/** A container could not be started (missing ConfigMap, ServiceAccount, …): the Job fails with this reason. */
class StartError extends Error {}

export function startJobRunner(options: JobRunnerOptions): JobRunner {
  const api = kubeApi(options.kubeconfig);
  const { namespace, repoRoot } = options;
  const pollMs = options.pollMs ?? 200;
  const parallelism = options.parallelism ?? 4;
  const retryDelayMs = options.retryDelayMs ?? 200;
  const workDir = mkdtempSync(join(tmpdir(), 'iro-jobs-'));
  const runs: JobRun[] = [];
  const byUid = new Map<string, JobRun>();
  const children = new Map<string, ChildProcess>();
  const queue: (() => void)[] = [];
  let active = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> | undefined;

  const jobPath = (name: string) => `/apis/batch/v1/namespaces/${namespace}/jobs/${name}`;

  async function patchStatus(run: JobRun, status: Record<string, unknown>): Promise<void> {
    const response = await api.request('PATCH', `${jobPath(run.name)}/status`, { status }, 'application/merge-patch+json');
    if (response.status >= 300 && response.status !== 404) {
      throw new Error(`Job ${namespace}/${run.name} status: ${apiMessage(response)}`);
    }
  }

  async function read(kind: 'configmaps' | 'secrets', name: string): Promise<Record<string, string> | undefined> {
    const response = await api.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${namespace}/${kind}/${name}`);
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw new Error(`reading ${kind} ${name}: ${apiMessage(response)}`);
    const data = response.body.data ?? {};
    return kind === 'secrets' ? Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])) : data;
  }

  async function resolveEnv(job: JobObject, container: Container, podName: string): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    for (const source of container.envFrom ?? []) {
      const ref = source.configMapRef ?? source.secretRef;
      if (!ref) continue;
      const kind = source.configMapRef ? 'configmaps' : 'secrets';
      const data = await read(kind, ref.name);
      if (!data) {
        if (ref.optional) continue;
        throw new StartError(`${kind === 'configmaps' ? 'configmap' : 'secret'} "${ref.name}" not found`);
      }
      for (const [key, value] of Object.entries(data)) env[`${source.prefix ?? ''}${key}`] = value;
    }
    const fields: Record<string, string | undefined> = {
      'metadata.name': podName,
      'metadata.namespace': namespace,
      'metadata.uid': job.metadata.uid,
      'spec.serviceAccountName': job.spec.template.spec.serviceAccountName ?? 'default',
      'spec.nodeName': 'localhost',
      'status.podIP': '127.0.0.1',
      'status.hostIP': '127.0.0.1',
    };
    for (const variable of container.env ?? []) {
      const from = variable.valueFrom;
      if (!from) {
        env[variable.name] = expandVariables(variable.value ?? '', env);
        continue;
      }
      const keyRef = from.configMapKeyRef ?? from.secretKeyRef;
      if (keyRef) {
        const kind = from.configMapKeyRef ? 'configmaps' : 'secrets';
        const value = (await read(kind, keyRef.name))?.[keyRef.key];
        if (value !== undefined) env[variable.name] = value;
        else if (!keyRef.optional) throw new StartError(`couldn't find key ${keyRef.key} in ${kind === 'configmaps' ? 'ConfigMap' : 'Secret'} ${namespace}/${keyRef.name}`);
        continue;
      }
      if (from.fieldRef) {
        const label = /^metadata\.labels\['(.+)'\]$/.exec(from.fieldRef.fieldPath)?.[1];
        const value = label !== undefined ? job.spec.template.metadata?.labels?.[label] : fields[from.fieldRef.fieldPath];
        if (value === undefined) throw new StartError(`env ${variable.name}: fieldRef ${from.fieldRef.fieldPath} is not supported by the stand-in`);
        env[variable.name] = value;
        continue;
      }
      throw new StartError(`env ${variable.name}: this valueFrom is not supported by the stand-in`);
    }
    return env;
  }

  /** The container's argv with `/app/` mapped into the repository and `node` to this Node.js. */
  function localArgv(containerArgv: string[]): string[] {
    return containerArgv.map((arg, i) => {
      if (i === 0 && (arg === 'node' || basename(arg) === 'node')) return process.execPath;
      return arg.startsWith('/app/') ? join(repoRoot, arg.slice('/app/'.length)) : arg;
    });
  }

  function capture(stream: NodeJS.ReadableStream | null, append: (text: string) => void): void {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => append(chunk));
  }

  function spawnAttempt(run: JobRun, env: Record<string, string>, cwd: string): Promise<JobAttempt> {
    const attempt: JobAttempt = { startedAt: new Date(), exitCode: null, signal: null, stdout: '', stderr: '' };
    run.attempts.push(attempt);
    const [command, ...args] = run.argv;
    return new Promise((resolve) => {
      // its own process group, so a deadline or stop() also ends what it started
      const child = spawn(command as string, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      children.set(run.uid, child);
      capture(child.stdout, (text) => { if (attempt.stdout.length < MAX_LOG) attempt.stdout += text; });
      capture(child.stderr, (text) => { if (attempt.stderr.length < MAX_LOG) attempt.stderr += text; });
      const end = (code: number | null, signal: string | null) => {
        children.delete(run.uid);
        Object.assign(attempt, { exitCode: code, signal, finishedAt: new Date() });
        writeFileSync(join(workDir, `${run.name}.log`), run.logs());
        resolve(attempt);
      };
      child.once('error', (error) => {
        attempt.stderr += `${error.message}\n`;
        end(127, null);
      });
      child.once('close', (code, signal) => end(code, signal));
    });
  }

  function kill(uid: string, signal: NodeJS.Signals): void {
    const pid = children.get(uid)?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // already gone
    }
  }

  async function execute(run: JobRun, job: JobObject): Promise<void> {
    if (stopped) return; // queued when the runner stopped: left for whoever runs Jobs next
    const container = job.spec.template.spec.containers[0];
    const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const startTime = job.status?.startTime ?? now();
    let failed = job.status?.failed ?? 0;
    const fail = async (reason: string, message: string) => {
      const at = now();
      run.result = 'Failed';
      run.reason = reason;
      run.message = message;
      await patchStatus(run, { active: 0, failed, conditions: [condition('FailureTarget', reason, message, at)] });
      await patchStatus(run, { conditions: [condition('FailureTarget', reason, message, at), condition('Failed', reason, message, at)] });
    };
    await patchStatus(run, { startTime, active: 1 });
    const deadlineMs = job.spec.activeDeadlineSeconds !== undefined ? Date.parse(startTime) + job.spec.activeDeadlineSeconds * 1000 : Infinity;
    let deadlineHit = false;
    const deadline = Number.isFinite(deadlineMs)
      ? setTimeout(() => {
          deadlineHit = true;
          kill(run.uid, 'SIGTERM');
          setTimeout(() => kill(run.uid, 'SIGKILL'), 2000).unref();
        }, Math.max(0, deadlineMs - Date.now()))
      : undefined;
    try {
      if (!container) return await fail('PodCreateFailed', 'the pod template has no containers');
      if (!container.command?.length) return await fail('PodCreateFailed', `container ${container.name} has no command; the stand-in cannot run an image's entrypoint`);
      const podName = `${run.name}-${run.uid.slice(0, 5)}`;
      let env: Record<string, string>;
      let kubeconfig: string;
      try {
        env = await resolveEnv(job, container, podName);
        kubeconfig = await serviceAccountKubeconfig(api, { namespace, serviceAccount: run.serviceAccount, file: join(workDir, `${run.name}.kubeconfig`) });
      } catch (error) {
        return await fail(error instanceof StartError ? 'CreateContainerConfigError' : 'PodCreateFailed', (error as Error).message);
      }
      run.env = env;
      run.containerArgv = [...container.command, ...(container.args ?? [])].map((arg) => expandVariables(arg, env));
      run.argv = localArgv(run.containerArgv);
      const home = join(workDir, `${run.name}.home`);
      mkdirSync(home, { recursive: true });
      const processEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, HOSTNAME: podName, ...options.env, ...env, KUBECONFIG: kubeconfig };
      const cwd = container.workingDir?.startsWith('/app') ? join(repoRoot, container.workingDir.slice('/app'.length)) : container.workingDir && isAbsolute(container.workingDir) ? container.workingDir : repoRoot;
      const backoffLimit = job.spec.backoffLimit ?? DEFAULT_BACKOFF_LIMIT;
      for (;;) {
        const attempt = await spawnAttempt(run, processEnv, cwd);
        if (stopped) return await fail('Stopped', 'the Job stand-in was stopped while the Job ran');
        if (deadlineHit) {
          failed += 1;
          return await fail('DeadlineExceeded', 'Job was active longer than specified deadline');
        }
        if (attempt.exitCode === 0) {
          const at = now();
          const message = 'Reached expected number of succeeded pods';
          run.result = 'Complete';
          await patchStatus(run, { active: 0, succeeded: 1, conditions: [condition('SuccessCriteriaMet', 'CompletionsReached', message, at)] });
          await patchStatus(run, {
            completionTime: at,
            conditions: [condition('SuccessCriteriaMet', 'CompletionsReached', message, at), condition('Complete', 'CompletionsReached', message, at)],
          });
          return;
        }
        failed += 1;
        if (failed > backoffLimit) return await fail('BackoffLimitExceeded', 'Job has reached the specified backoff limit');
        await patchStatus(run, { active: 1, failed });
        await delay(retryDelayMs);
      }
    } finally {
      clearTimeout(deadline);
    }
  }

  function pickUp(job: JobObject): void {
    const run: JobRun = {
      namespace,
      name: job.metadata.name,
      uid: job.metadata.uid,
      serviceAccount: job.spec.template.spec.serviceAccountName || 'default',
      containerArgv: [],
      argv: [],
      env: {},
      attempts: [],
      done: undefined as unknown as Promise<JobRun>,
      logs: () => run.attempts.map((a) => a.stdout + a.stderr).join(''),
    };
    byUid.set(run.uid, run);
    runs.push(run);
    run.done = new Promise<void>((resolve) => queue.push(resolve))
      .then(() => execute(run, job))
      .catch((error: unknown) => {
        run.result ??= 'Failed';
        run.reason ??= 'StandInError';
        run.message ??= (error as Error).message;
      })
      .then(() => {
        active -= 1;
        pump();
        return run;
      });
    pump();
  }

  function pump(): void {
    while (active < parallelism && queue.length > 0 && !stopped) {
      active += 1;
      queue.shift()?.();
    }
  }

  async function pollOnce(): Promise<void> {
    const response = await api.request<{ items: JobObject[] }>('GET', `/apis/batch/v1/namespaces/${namespace}/jobs`);
    if (response.status !== 200) throw new Error(`listing Jobs in ${namespace}: ${apiMessage(response)}`);
    const listed = new Set<string>();
    for (const job of response.body.items) {
      listed.add(job.metadata.uid);
      if (stopped || byUid.has(job.metadata.uid) || job.spec.suspend || finished(job)) continue;
      if (options.filter && !options.filter(job)) continue;
      pickUp(job);
    }
    // a deleted Job's pod is deleted too
    for (const uid of children.keys()) if (!listed.has(uid)) kill(uid, 'SIGKILL');
  }

  /** One poll at a time; callers share the one in flight. */
  function poll(): Promise<void> {
    polling ??= pollOnce().finally(() => (polling = undefined));
    return polling;
  }

  const loop = async () => {
    try {
      await poll();
    } catch {
      // the API server may be restarting; the next poll retries
    }
    if (!stopped) timer = setTimeout(loop, pollMs);
  };
  void loop();

  const latest = (name: string) => runs.findLast((run) => run.name === name);

  return {
    get jobsRun() {
      return runs.length;
    },
    runs: () => [...runs],
    run: latest,
    logs: (name) => latest(name)?.logs() ?? '',
    async waitIdle(timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        await poll();
        const busy = runs.filter((run) => run.result === undefined);
        if (busy.length === 0) return;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`Jobs still pending or running after ${timeoutMs} ms: ${busy.map((run) => run.name).join(', ')}`);
        await Promise.race([Promise.all(busy.map((run) => run.done)), delay(Math.min(left, 1000))]);
      }
    },
    async waitForJob(name, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        await poll();
        const run = latest(name);
        if (run?.result) return run;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`Job ${namespace}/${name} ${run ? 'still running' : 'never started'} after ${timeoutMs} ms`);
        await (run ? Promise.race([run.done, delay(Math.min(left, 1000))]) : delay(Math.min(left, pollMs)));
      }
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      while (queue.length > 0) queue.shift()?.();
      for (const uid of children.keys()) kill(uid, 'SIGTERM');
      const running = runs.filter((run) => children.has(run.uid)).map((run) => run.done);
      const killer = setTimeout(() => { for (const uid of children.keys()) kill(uid, 'SIGKILL'); }, 3000);
      await Promise.all(running);
      clearTimeout(killer);
      await polling?.catch(() => {});
      api.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}
