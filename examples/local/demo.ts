/**
 * `npm run demo`: what cloudtaser is for, end to end on the embedded local stack, offline. Each step prints its
 * figure; the summary lists them all. Exit 0 only if every step worked. See examples/local/README.md.
 *
 * Steps (one function each, in `steps` below, so a step can be added without touching the others):
 *   dev stack up, provider mirror, <cdk> deploy (register the cluster), bridge and broker bootstrap to operational,
 *   a secret written in OpenBao, a pod logs in through the pod API and reads it, the webhook injects the in-memory
 *   secret volume, a Kubernetes Secret migrated into OpenBao and removed, <cdk> destroy (deregister), the tunnel
 *   closed after deregistration, stop everything.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, stripVTControlCharacters } from 'node:util';
import { Agent, request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { installProviderMirror } from '../../provider/packaging/mirror.js';
import { type DevStack, startDevStack } from '../../runtime/dev/stack.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = resolve(here, '../../..');
const cli = join(packageRoot, 'dist/runtime/cli/main.js');

const USAGE = `Usage: npm run demo -- [--cdk cdktf|cdktn] [--app FILE] [--verbose]

Runs cloudtaser's main job on the local dev stack (OpenBao and Kubernetes test servers, a beacon): registers the
cluster with a CDK deploy, bootstraps the broker, then shows a pod reading a secret through the tunnel, the webhook
injecting the in-memory secret volume and a Kubernetes Secret migrated into OpenBao, and deregisters with destroy.
Needs Node.js >= 20.18 and terraform on PATH; nothing goes online.

  --cdk cdktf|cdktn  which CDK for Terraform runs the deploy (default: $CLOUDTASER_CDK, else cdktf); its CLI
                     (cdktf-cli or cdktn-cli) is taken from node_modules/.bin beside the app
  --app FILE         the CDK app to deploy (default: the built examples/local/app.js)
  --verbose          show the CDK CLI's and the processes' own output
  --help             print this text
`;

const { values: flags } = parseArgs({
  options: {
    cdk: { type: 'string' },
    app: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const verbose = flags.verbose === true;
const cdk = flags.cdk ?? process.env.CLOUDTASER_CDK ?? 'cdktf';
if (cdk !== 'cdktf' && cdk !== 'cdktn') fail(`--cdk must be cdktf or cdktn, not ${JSON.stringify(cdk)}`);
const appFile = resolve(flags.app ?? join(here, 'app.js'));
const cdkCli = findBin(dirname(appFile), cdk) ?? findBin(packageRoot, cdk);

// --- preflight: one clear line instead of a failure buried in a CDK CLI's output ---
const terraform = spawnSync('terraform', ['version', '-json'], { encoding: 'utf8' });
if (terraform.error || terraform.status !== 0) {
  fail(
    'terraform is not on PATH: the demo deploys through the CDK CLI, which runs Terraform (>= 1.2); install it from https://developer.hashicorp.com/terraform/install',
  );
}
const terraformVersion = String(JSON.parse(terraform.stdout).terraform_version ?? '?');
if (!existsSync(appFile)) fail(`the CDK app ${appFile} does not exist; run npm run build first`);
if (!cdkCli)
  fail(
    `the ${cdk} CLI is not installed beside ${appFile}: npm install ${cdk === 'cdktf' ? 'cdktf-cli@^0.21' : 'cdktn-cli@^0.24 (needs Node.js >= 22.19)'}`,
  );

// --- the steps ---

interface StepResult {
  readonly name: string;
  readonly ms: number;
  readonly detail: string;
  readonly ok: boolean;
}
const results: StepResult[] = [];
const children: ChildProcess[] = [];

async function step(name: string, work: () => Promise<string>): Promise<void> {
  const started = performance.now();
  process.stderr.write(`… ${name}\n`);
  try {
    const detail = await work();
    results.push({ name, ms: performance.now() - started, detail, ok: true });
    process.stderr.write(`✓ ${name} (${fmtMs(performance.now() - started)}): ${detail}\n`);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    results.push({ name, ms: performance.now() - started, detail, ok: false });
    process.stderr.write(`✗ ${name}: ${detail}\n`);
    throw err;
  }
}

/** What the steps share: the stack, the admin clients, and what earlier steps learned. */
interface DemoState {
  readonly stack: DevStack;
  readonly admin: OpenBaoClient;
  readonly kube: KubeAdmin;
  readonly workdir: string;
  cdkEnv: NodeJS.ProcessEnv;
  appDir: string;
  outputs: Record<string, string>;
  brokerHealth: string;
  bridgeHealth?: string;
  brokerArgs?: string[];
  bridgeTokenReview: string;
  podApiUrl: string;
  webhookUrl: string;
  broker: Record<string, unknown>;
  secret: { path: string; password: string; version: number };
}

const APP_NAMESPACE = 'team-a';
const APP_SERVICE_ACCOUNT = 'app-a';
const ROLE = 'app';
const SECRET_PATH = 'app/db';
const OPERATOR_IMAGE = 'ghcr.io/cloudtaser/cloudtaser-operator:0.2.0';

const steps: Array<[string, (s: DemoState) => Promise<string>]> = [
  ['provider mirror', providerMirror],
  [`${cdk} deploy (register the cluster)`, deploy],
  ['bridge and broker bootstrap to operational', bootstrap],
  ['a secret written in OpenBao', writeSecret],
  ["a pod's service account logs in through the pod API and reads it", podReadsSecret],
  ['the webhook injects the in-memory secret volume', webhookInjects],
  ['a Kubernetes Secret migrated into OpenBao and removed', migrateSecret],
  ['doctor on both sides: every link of the healthy path', doctor],
  [`${cdk} destroy (deregister the cluster)`, destroy],
  ['tunnel closed after deregistration', tunnelClosed],
];

/** Dev stack, the steps in order, then stop everything and print the summary; exits with 0 only if all worked. */
async function main(): Promise<never> {
  const workdir = await mkdtemp(join(tmpdir(), 'cloudtaser-demo-'));
  let stack: DevStack | undefined;
  let admin: OpenBaoClient | undefined;
  let kube: KubeAdmin | undefined;
  let exitCode = 0;
  process.stderr.write(
    `cloudtaser local demo: ${cdk} (${cdkCli}), terraform ${terraformVersion}, Node.js ${process.versions.node}\n`,
  );

  try {
    await step('dev stack up', async () => {
      stack = await startDevStack({ dir: join(workdir, 'dev') });
      admin = new OpenBaoClient({ address: stack.secretstoreAddress, token: stack.secretstoreToken });
      kube = await KubeAdmin.fromKubeconfig(stack.kubeconfig);
      return `OpenBao test server ${stack.secretstoreAddress}, Kubernetes test server ${stack.kubeUrl}, beacon ${stack.beaconAddress}`;
    });
    const state: DemoState = {
      stack: stack!,
      admin: admin!,
      kube: kube!,
      workdir,
      cdkEnv: {},
      appDir: '',
      outputs: {},
      brokerHealth: '',
      bridgeTokenReview: '',
      podApiUrl: '',
      webhookUrl: '',
      broker: {},
      secret: { path: SECRET_PATH, password: '', version: 0 },
    };
    for (const [name, work] of steps) await step(name, () => work(state));
  } catch {
    exitCode = 1;
  } finally {
    await step('stop everything', async () => {
      for (const child of children) child.kill('SIGTERM');
      await Promise.all(
        children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)),
      );
      await kube?.close();
      await admin?.close();
      await stack?.close();
      await rm(workdir, { recursive: true, force: true });
      return `${children.length} processes stopped, dev stack closed, temp files removed`;
    }).catch(() => {
      exitCode = 1;
    });
  }

  process.stdout.write(`\ncloudtaser local demo (${cdk})\n`);
  for (const r of results)
    process.stdout.write(
      `  ${r.ok ? '✓' : '✗'} ${r.name.padEnd(66)} ${fmtMs(r.ms).padStart(8)}  ${r.detail}\n`,
    );
  const total = results.reduce((sum, r) => sum + r.ms, 0);
  process.stdout.write(`  ${exitCode === 0 ? 'all steps worked' : 'FAILED'} in ${fmtMs(total)}\n`);
  process.exit(exitCode);
}

// --- step bodies ---

async function providerMirror(s: DemoState): Promise<string> {
  const cliConfig = join(s.workdir, 'terraform.rc');
  const mirror = installProviderMirror(join(s.workdir, 'mirror'), {
    platforms: [`${process.platform}_${process.arch === 'x64' ? 'amd64' : process.arch}`],
  });
  await writeFile(cliConfig, `disable_checkpoint = true\n${mirror.cliConfig}\n`);
  s.cdkEnv = {
    ...process.env,
    CHECKPOINT_DISABLE: '1',
    TF_CLI_CONFIG_FILE: cliConfig,
    TF_IN_AUTOMATION: '1',
    CLOUDTASER_CDK: cdk,
    CLOUDTASER_SECRETSTORE_ADDRESS: s.stack.secretstoreAddress,
    // The registrar's least-privilege token, not the root token (docs/openbao-policies.md).
    CLOUDTASER_SECRETSTORE_TOKEN: s.stack.registrarToken,
    CLOUDTASER_DEMO_BEACON: s.stack.beaconAddress,
    CLOUDTASER_DEMO_KUBECONFIG: s.stack.kubeconfig,
  };
  return `${mirror.providerAddress} ${mirror.version} (${mirror.h1})`;
}

async function deploy(s: DemoState): Promise<string> {
  s.appDir = join(s.workdir, 'app');
  await mkdir(s.appDir, { recursive: true });
  await writeFile(
    join(s.appDir, 'cdktf.json'),
    JSON.stringify({
      language: 'typescript',
      app: `${JSON.stringify(process.execPath)} ${JSON.stringify(appFile)}`,
      sendCrashReports: 'false',
      terraformProviders: [],
    }),
  );
  await runCdk(
    'deploy',
    ['deploy', 'local', '--auto-approve', '--skip-provider-lock', '--outputs-file', 'outputs.json'],
    s,
  );
  s.outputs = JSON.parse(await readFile(join(s.appDir, 'outputs.json'), 'utf8')).local;
  const status = await getClusterStatus(s.admin, { fingerprint: s.outputs.fingerprint });
  if (!status.registered) throw new Error(`${cdk} deploy finished but OpenBao has no registration record`);
  if (String(s.outputs.attested) !== 'true')
    throw new Error('the registration is not attested; RegisteredCluster should turn attestation on');
  return `fingerprint ${s.outputs.fingerprint} registered in ${s.outputs.namespace}, attested bootstrap on`;
}

async function bootstrap(s: DemoState): Promise<string> {
  s.brokerHealth = await freeAddress();
  const bridgeHealth = await freeAddress();
  s.bridgeHealth = bridgeHealth;
  s.bridgeTokenReview = await freeAddress();
  const podApi = await freeAddress();
  const webhook = await freeAddress();
  // OpenBao's Kubernetes auth reviews pod tokens at the bridge, which carries the review through the tunnel.
  const reregister = await runCli(s, [
    'source',
    'register',
    '--fingerprint',
    s.outputs.fingerprint,
    '--secretstore-address',
    s.stack.secretstoreAddress,
    '--tokenreview-endpoint',
    `https://${s.bridgeTokenReview}`,
    '--output',
    'json',
  ]);
  if (JSON.parse(reregister).operationalHash !== s.outputs.operational_hash)
    throw new Error('re-registering with the TokenReview endpoint changed the cluster CA');
  children.push(
    startCli(
      'bridge',
      [
        'bridge',
        'run',
        '--secretstore-address',
        s.stack.secretstoreAddress,
        '--beacon',
        s.stack.beaconAddress,
        '--beacon-ca',
        s.stack.beaconCaFile,
        '--health-listen',
        bridgeHealth,
        '--tokenreview-listen',
        s.bridgeTokenReview,
        '--poll-interval',
        '1s',
      ],
      // The bridge's own least-privilege token (the cloudtaser-bridge policy), as in production.
      { CLOUDTASER_SECRETSTORE_TOKEN: s.stack.bridgeToken },
    ),
  );
  s.brokerArgs = [
    'broker',
    'run',
    '--beacon',
    s.stack.beaconAddress,
    '--beacon-ca',
    s.stack.beaconCaFile,
    '--kubeconfig',
    s.stack.operatorKubeconfig,
    '--attestation',
    '--service-account',
    'cloudtaser-system/cloudtaser',
    '--ca-sha256',
    s.outputs.operational_hash,
    '--health-listen',
    s.brokerHealth,
    '--pod-api-listen',
    podApi,
    '--pod-api-dns-name',
    'localhost',
    '--webhook-listen',
    webhook,
    '--inject-image',
    OPERATOR_IMAGE,
    '--migrate',
    '--migrate-interval',
    '1s',
  ];
  children.push(startCli('broker', s.brokerArgs));
  const started = performance.now();
  s.broker = await waitForStatus(s.brokerHealth, (b) => b.phase === 'operational', 30_000);
  s.podApiUrl = `https://localhost:${podApi.split(':')[1]}`;
  s.webhookUrl = `https://localhost:${webhook.split(':')[1]}/mutate-pods`;
  return `broker operational ${fmtMs(performance.now() - started)} after start, through beacon ${s.broker.beaconIp}; CA pinned by caSha256, bootstrap attested by the operator's service-account token`;
}

async function writeSecret(s: DemoState): Promise<string> {
  // What an OpenBao admin does with `bao policy write`, `bao write auth/kubernetes/role/...` and `bao kv put`.
  const cluster = s.admin.withNamespace(s.outputs.namespace);
  await cluster.writePolicy(
    'app-read',
    'path "secret/data/app/*" { capabilities = ["read"] }\npath "secret/metadata/app/*" { capabilities = ["read", "list"] }\n',
  );
  await cluster.writeKubernetesAuthRole('kubernetes', ROLE, {
    boundServiceAccountNames: [APP_SERVICE_ACCOUNT],
    boundServiceAccountNamespaces: [APP_NAMESPACE],
    policies: ['app-read'],
    ttl: '15m',
  });
  s.secret.password = randomBytes(12).toString('base64url');
  s.secret.version = (
    await cluster.kvWrite('secret', SECRET_PATH, { user: 'app', password: s.secret.password })
  ).version;
  return `secret/${SECRET_PATH} version ${s.secret.version} in namespace ${s.outputs.namespace} (keys user, password; password ${fingerprintOf(s.secret.password)}); role "${ROLE}" lets ${APP_NAMESPACE}/${APP_SERVICE_ACCOUNT} read secret/app/*`;
}

async function podReadsSecret(s: DemoState): Promise<string> {
  await s.kube.ensureServiceAccount(APP_NAMESPACE, APP_SERVICE_ACCOUNT);
  const jwt = await s.kube.requestToken(APP_NAMESPACE, APP_SERVICE_ACCOUNT);
  // The pod's view: VAULT_ADDR is the pod API; VAULT_CACERT is the CA the broker's /status publishes.
  const agent = new Agent({ connect: { ca: String(s.broker.podApiCaPem) } });
  try {
    const started = performance.now();
    const login = await podApi(agent, 'POST', `${s.podApiUrl}/v1/auth/kubernetes/login`, {
      body: { role: ROLE, jwt },
    });
    const loginMs = performance.now() - started;
    const auth = login.auth as { client_token: string; policies: string[] };
    const readStarted = performance.now();
    const read = await podApi(agent, 'GET', `${s.podApiUrl}/v1/secret/data/${SECRET_PATH}`, {
      token: auth.client_token,
    });
    const readMs = performance.now() - readStarted;
    const data = (read.data as { data: Record<string, string>; metadata: { version: number } }).data;
    if (data.password !== s.secret.password)
      throw new Error('the pod read a different password than was written');
    return `${APP_NAMESPACE}/${APP_SERVICE_ACCOUNT} logged in (TokenReview through the tunnel, policies ${auth.policies.join(',')}) in ${fmtMs(loginMs)}, read secret/${SECRET_PATH} in ${fmtMs(readMs)}: password ${fingerprintOf(data.password)}, the value written`;
  } finally {
    await agent.close();
  }
}

async function webhookInjects(s: DemoState): Promise<string> {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'app-',
      namespace: APP_NAMESPACE,
      labels: { 'cloudtaser.io/inject': 'true' },
      annotations: { 'cloudtaser.io/role': ROLE, 'cloudtaser.io/secret-db.json': SECRET_PATH },
    },
    spec: { serviceAccountName: APP_SERVICE_ACCOUNT, containers: [{ name: 'app', image: 'busybox' }] },
  };
  const uid = crypto.randomUUID();
  const agent = new Agent({ connect: { ca: String(s.broker.webhookCaPem) } });
  try {
    const response = await request(`${s.webhookUrl}?timeout=10s`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        kind: 'AdmissionReview',
        apiVersion: 'admission.k8s.io/v1',
        request: {
          uid,
          kind: { group: '', version: 'v1', kind: 'Pod' },
          resource: { group: '', version: 'v1', resource: 'pods' },
          namespace: APP_NAMESPACE,
          operation: 'CREATE',
          userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
          object: pod,
        },
      }),
    });
    const review = (await response.body.json()) as {
      response: { uid: string; allowed: boolean; patch?: string; status?: { message?: string } };
    };
    if (!review.response.allowed || !review.response.patch)
      throw new Error(`the webhook did not mutate the pod: ${review.response.status?.message ?? 'no patch'}`);
    const patch = JSON.parse(Buffer.from(review.response.patch, 'base64').toString('utf8')) as Array<{
      op: string;
      path: string;
      value: Record<string, unknown> | Array<Record<string, unknown>>;
    }>;
    return describeInjection(patch);
  } finally {
    await agent.close();
  }
}

async function migrateSecret(s: DemoState): Promise<string> {
  const name = 'legacy-db';
  const data = { username: 'legacy', password: randomBytes(12).toString('base64url') };
  await s.kube.createSecret(APP_NAMESPACE, name, data);
  // The operator's command: mark the Secrets; the broker (--migrate) moves each one, verifies, then deletes it.
  const started = performance.now();
  const marked = await runCli(s, [
    'target',
    'migrate',
    '--kubeconfig',
    s.stack.kubeconfig,
    '--namespace',
    APP_NAMESPACE,
    '--wait',
    '30',
    '--output',
    'json',
  ]);
  const result = JSON.parse(marked) as { annotated: unknown[]; pending: unknown[] };
  if (result.pending.length > 0)
    throw new Error(`${result.pending.length} Secret(s) still waiting for the broker`);
  const moved = await s.admin
    .withNamespace(s.outputs.namespace)
    .kvRead('secret', `k8s/${APP_NAMESPACE}/${name}`);
  if (moved?.data.password !== data.password)
    throw new Error('OpenBao does not hold the Secret that was migrated');
  if (await s.kube.secretExists(APP_NAMESPACE, name))
    throw new Error('the Kubernetes Secret still exists after migration');
  return `${APP_NAMESPACE}/${name} (${Object.keys(data).length} keys) marked by cloudtaser-cli target migrate, written to secret/k8s/${APP_NAMESPACE}/${name} (version ${moved.version}, password ${fingerprintOf(data.password)}), verified, then deleted from Kubernetes; ${fmtMs(performance.now() - started)}`;
}

async function destroy(s: DemoState): Promise<string> {
  // The deploy's synthesis in cdktf.out is current: no second run of the app.
  await runCdk('destroy', ['destroy', 'local', '--auto-approve', '--skip-provider-lock', '--skip-synth'], s);
  const status = await getClusterStatus(s.admin, { fingerprint: s.outputs.fingerprint });
  if (status.registered)
    throw new Error(`${cdk} destroy finished but the registration record is still there`);
  return 'registration and initialization records removed; workload secrets kept';
}

async function tunnelClosed(s: DemoState): Promise<string> {
  const started = performance.now();
  const status = await waitForStatus(s.brokerHealth, (b) => b.phase !== 'operational', 15_000);
  return `broker left the operational phase ${fmtMs(performance.now() - started)} after destroy (now "${status.phase}")`;
}

// --- helpers ---

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(1);
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`;
}

/** A short, non-reversible label for a secret value: enough to show two reads match, never the value. */
function fingerprintOf(value: string): string {
  return `sha256:${createHash('sha256').update(value).digest('hex').slice(0, 12)}`;
}

function findBin(from: string, name: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', '.bin', name);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/** Phases worth a progress line, as the CDK CLI and Terraform print them. */
const PHASES =
  /(Synthesizing|Initializing|Planning|Creating|Creation complete|Modifying|Reading|Read complete|Destroying|Destruction complete|Apply complete|Destroy complete|Refreshing)/;

/** Runs the CDK CLI with a progress line per phase and a heartbeat, so a deploy never goes quiet for long. */
function runCdk(label: string, args: string[], s: DemoState): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cdkCli!, args, { cwd: s.appDir, env: s.cdkEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const started = performance.now();
    let output = '';
    let lastPhase = `starting the ${cdk} CLI`;
    let lastReport = performance.now();
    const report = (text: string) => {
      lastReport = performance.now();
      process.stderr.write(`  · ${cdk} ${label}: ${text} (${fmtMs(performance.now() - started)})\n`);
    };
    const collect = (d: Buffer) => {
      output += d;
      if (verbose) process.stderr.write(d);
      for (const line of d.toString('utf8').split('\n')) {
        // Without spinner frames (braille glyphs) and the stack-name column, so a phase is reported once.
        const clean = stripVTControlCharacters(line)
          .replace(/[\u2800-\u28ff]/g, '')
          .trim()
          .replace(/^local\s+/, '');
        const phase = PHASES.exec(clean)?.[1];
        if (phase && !verbose && clean !== lastPhase) {
          lastPhase = clean.length > 100 ? `${clean.slice(0, 97)}...` : clean;
          report(lastPhase);
        }
      }
    };
    const heartbeat = setInterval(() => {
      if (!verbose && performance.now() - lastReport > 2500) report(`still working after: ${lastPhase}`);
    }, 500);
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (err) => {
      clearInterval(heartbeat);
      reject(err);
    });
    child.on('exit', (code) => {
      clearInterval(heartbeat);
      if (code === 0) resolvePromise();
      else reject(new Error(`${cdk} ${args[0]} exited ${code}:\n${output.slice(-3000)}`));
    });
  });
}

/** Runs one cloudtaser-cli command to its end and returns its stdout; a failure carries its CT_ line. */
/** `target doctor` and `source doctor` on the running path; the reports are printed, any broken link fails the step. */
async function doctor(s: DemoState): Promise<string> {
  // The operator runs here as a local process; its Deployment is placed in the cluster as the chart would make it.
  s.stack.placeOperatorDeployment(s.brokerArgs ?? []);
  const reports: string[] = [];
  const exits: number[] = [];
  for (const args of [
    [
      'target',
      'doctor',
      '--kubeconfig',
      s.stack.kubeconfig,
      '--broker-status-url',
      `http://${s.brokerHealth}`,
      '--beacon-ca',
      s.stack.beaconCaFile,
    ],
    [
      'source',
      'doctor',
      '--secretstore-address',
      s.stack.secretstoreAddress,
      '--fingerprint',
      s.outputs.fingerprint,
      '--bridge-health-url',
      `http://${s.bridgeHealth}`,
    ],
  ]) {
    const child = spawn(process.execPath, [cli, ...args], {
      env: {
        ...process.env,
        CLOUDTASER_SECRETSTORE_TOKEN: s.stack.registrarToken,
        CLOUDTASER_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const [code] = await once(child, 'exit');
    reports.push(out);
    exits.push(code as number);
  }
  process.stderr.write(`\n${reports.join('\n')}\n`);
  if (exits.some((code) => code !== 0))
    throw new Error(`doctor found a broken link (exit ${exits.join(', ')})`);
  return 'target doctor and source doctor: healthy (exit 0 on both sides)';
}

async function runCli(s: DemoState, args: string[]): Promise<string> {
  const child = spawn(process.execPath, [cli, ...args], {
    env: {
      ...process.env,
      // `source register` runs as the registrar (docs/openbao-policies.md), never with the root token.
      CLOUDTASER_SECRETSTORE_TOKEN: s.stack.registrarToken,
      CLOUDTASER_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const [code] = await once(child, 'exit');
  if (code !== 0)
    throw new Error(`cloudtaser-cli ${args.slice(0, 2).join(' ')} exited ${code}: ${stderr.trim()}`);
  return stdout;
}

function startCli(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, CLOUDTASER_LOG_LEVEL: verbose ? 'debug' : 'warn', ...env },
    stdio: ['ignore', 'ignore', verbose ? 'inherit' : 'ignore'],
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM' && verbose)
      process.stderr.write(`${name} exited ${code ?? signal}\n`);
  });
  return child;
}

async function freeAddress(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return `127.0.0.1:${port}`;
}

async function waitForStatus(
  address: string,
  done: (status: Record<string, unknown>) => boolean,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, unknown> | undefined;
  while (Date.now() < deadline) {
    try {
      last = (await (await fetch(`http://${address}/status`)).json()) as Record<string, unknown>;
      if (done(last)) return last;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms; last status: ${JSON.stringify(last)}`);
}

async function podApi(
  agent: Agent,
  method: 'GET' | 'POST',
  url: string,
  options: { body?: unknown; token?: string },
): Promise<Record<string, unknown>> {
  const response = await request(url, {
    method,
    dispatcher: agent,
    headers: {
      ...(options.token ? { 'x-vault-token': options.token } : {}),
      ...(options.body ? { 'content-type': 'application/json' } : {}),
    },
    body: options.body ? JSON.stringify(options.body) : undefined,
  });
  const body = (await response.body.json()) as Record<string, unknown>;
  if (response.statusCode !== 200)
    throw new Error(
      `${method} ${new URL(url).pathname} answered ${response.statusCode}: ${JSON.stringify(body)}`,
    );
  return body;
}

/** What the webhook's JSONPatch adds, in words: the init container, the volume and the mounts. */
function describeInjection(
  patch: Array<{ op: string; path: string; value: Record<string, unknown> | Array<Record<string, unknown>> }>,
): string {
  const added = (suffix: RegExp) =>
    patch
      .filter((p) => p.op === 'add' && suffix.test(p.path))
      .flatMap((p) => (Array.isArray(p.value) ? p.value : [p.value]));
  const inits = added(/\/spec\/initContainers(\/-)?$/);
  const volumes = added(/\/spec\/volumes(\/-)?$/);
  const mounts = added(/\/volumeMounts(\/-)?$/);
  const env = added(/\/env(\/-)?$/);
  const parts = [
    ...inits.map((c) => `init container ${c.name} (${c.image})`),
    ...volumes.map((v) => {
      // The login token is a projected service-account token, not an emptyDir (the summary said "medium disk").
      if (v.projected) return `volume ${v.name} (projected service-account token)`;
      const emptyDir = v.emptyDir as { medium?: string; sizeLimit?: string } | undefined;
      return `volume ${v.name} (emptyDir, medium ${emptyDir?.medium ?? 'disk'}${emptyDir?.sizeLimit ? `, ${emptyDir.sizeLimit}` : ''})`;
    }),
    `${mounts.length} mount(s) at ${[...new Set(mounts.map((m) => m.mountPath))].join(', ')}`,
    ...(env.length ? [`env ${env.map((e) => e.name).join(', ')}`] : []),
  ];
  if (inits.length === 0 || volumes.length === 0)
    throw new Error(`unexpected patch: ${JSON.stringify(patch)}`);
  return `labelled pod admitted with ${patch.length} patch operations: ${parts.join('; ')}`;
}

/** The cluster admin's side of the demo, over the Kubernetes API with the admin kubeconfig (what kubectl does). */
class KubeAdmin {
  private constructor(
    private readonly server: string,
    private readonly token: string,
    private readonly agent: Agent,
  ) {}

  static async fromKubeconfig(path: string): Promise<KubeAdmin> {
    const config = parseYaml(await readFile(path, 'utf8')) as {
      clusters: Array<{ cluster: { server: string; 'certificate-authority-data': string } }>;
      users: Array<{ user: { token: string } }>;
    };
    const cluster = config.clusters[0].cluster;
    const ca = Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8');
    return new KubeAdmin(cluster.server, config.users[0].user.token, new Agent({ connect: { ca } }));
  }

  private async call(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await request(`${this.server}${path}`, {
      method,
      dispatcher: this.agent,
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
  }

  private async create(path: string, body: unknown): Promise<void> {
    const answer = await this.call('POST', path, body);
    if (answer.status !== 201 && answer.status !== 200 && answer.status !== 409)
      throw new Error(`POST ${path} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  }

  async ensureServiceAccount(namespace: string, name: string): Promise<void> {
    await this.create('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: namespace },
    });
    await this.create(`/api/v1/namespaces/${namespace}/serviceaccounts`, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name },
    });
  }

  /** A short-lived projected token, as the kubelet mounts one into the pod. */
  async requestToken(namespace: string, name: string): Promise<string> {
    const answer = await this.call('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 600 },
    });
    const token = (answer.body.status as { token?: string } | undefined)?.token;
    if (!token) throw new Error(`TokenRequest answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    return token;
  }

  async createSecret(namespace: string, name: string, data: Record<string, string>): Promise<void> {
    await this.create('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: namespace },
    });
    await this.create(`/api/v1/namespaces/${namespace}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name },
      type: 'Opaque',
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    });
  }

  async secretExists(namespace: string, name: string): Promise<boolean> {
    return (await this.call('GET', `/api/v1/namespaces/${namespace}/secrets/${name}`)).status === 200;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

await main();
