import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { createAutoMtlsCertificate } from '../../provider/wire/automtls-cert.js';
import { hclogTimestamp } from '../../provider/wire/hclog.js';
import { MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE } from '../../provider/wire/serve.js';
import { issueSelfSignedSync } from '../../runtime/pki/index.js';
import { runProcess } from '../run-process.js';
import { isProcessAlive } from '../support/process-alive.js';
import { waitUntil } from '../support/wait.js';
import { testBundle } from './support/bundle.js';
import { launchProvider } from './support/launch.js';
import { createWorkspace } from './support/terraform.js';

let bundle: string;
beforeAll(async () => {
  bundle = await testBundle();
}, 60_000);

function runToExit(args: string[], env: Record<string, string>) {
  return runProcess(bundle, args, { env: { PATH: process.env.PATH ?? '', ...env } });
}

describe('go-plugin handshake of the bundled provider', () => {
  it('prints 1|6|unix|socket|grpc|cert with the certificate as unpadded base64 DER for localhost', async () => {
    const p = await launchProvider(bundle);
    try {
      const [core, app, network, address, protocol, cert] = p.fields;
      expect([core, app, network, protocol]).toEqual(['1', '6', 'unix', 'grpc']);
      expect(existsSync(address)).toBe(true);
      expect(cert).not.toMatch(/=/);
      const x509 = new X509Certificate(Buffer.from(cert, 'base64'));
      expect(x509.checkHost('localhost')).toBe('localhost');
      expect(x509.ca).toBe(true);
      expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      const schema = await p.call('GetProviderSchema');
      expect(Object.keys(schema.resourceSchemas)).toEqual([
        'cloudtaser_cluster_registration',
        'cloudtaser_beacon_client_ca',
      ]);
      expect(Object.keys(schema.dataSourceSchemas)).toEqual(['cloudtaser_cluster_fingerprint']);
      expect(schema.serverCapabilities).toMatchObject({ planDestroy: true, getProviderSchemaOptional: true });
      expect(await p.shutdown()).toBe(0);
      expect(existsSync(address)).toBe(false);
    } finally {
      p.kill();
    }
  });

  it("refuses a TLS client without terraform's client certificate, or with another one, and keeps serving terraform", async () => {
    const p = await launchProvider(bundle);
    try {
      const padded = p.fields[5] + '='.repeat((4 - (p.fields[5].length % 4)) % 4);
      const pem = `-----BEGIN CERTIFICATE-----\n${padded.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
      const other = issueSelfSignedSync({ commonName: 'localhost', dnsNames: ['localhost'] });
      const credentials = [
        grpc.credentials.createSsl(Buffer.from(pem)),
        grpc.credentials.createSsl(Buffer.from(pem), Buffer.from(other.keyPem), Buffer.from(other.certPem)),
      ];
      for (const credential of credentials) {
        const stranger = new grpc.Client(`unix:${p.fields[3]}`, credential, {
          'grpc.ssl_target_name_override': 'localhost',
        });
        const error = await new Promise<grpc.ServiceError | null>((resolve) => {
          stranger.makeUnaryRequest(
            '/tfplugin6.Provider/GetProviderSchema',
            () => Buffer.alloc(0),
            (b: Buffer) => b,
            {},
            { deadline: Date.now() + 3000 },
            (err) => resolve(err),
          );
        });
        stranger.close();
        expect(error?.code).toBe(grpc.status.UNAVAILABLE);
      }
      expect(Object.keys((await p.call('GetProviderSchema')).resourceSchemas)).toEqual([
        'cloudtaser_cluster_registration',
        'cloudtaser_beacon_client_ca',
      ]);
    } finally {
      p.kill();
    }
  });

  it('without TF_PLUGIN_MAGIC_COOKIE exits 1 with a hint and prints nothing on stdout', async () => {
    const r = await runToExit([], {});
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('is a Terraform plugin');
    expect(r.stderr).toContain('--debug');
  });

  it.each([['--help'], ['-h']])(
    '%s prints usage on stdout and exits 0 (a request, not an error)',
    async (flag) => {
      const r = await runToExit([flag], {});
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: terraform-provider-cloudtaser /);
      expect(r.stdout).toContain('--debug');
      expect(r.stderr).toBe('');
    },
  );

  it('when terraform offers only protocol 5, says so on the first stdout line (shown to the user)', async () => {
    const r = await runToExit([], { [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE, PLUGIN_PROTOCOL_VERSIONS: '5' });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/protocol 6 only.*offered 5/);
  });

  it('with TLS disabled (no PLUGIN_CLIENT_CERT) leaves the cert field empty and serves plaintext', async () => {
    const p = await launchProvider(bundle, { tls: false });
    try {
      expect(p.fields[5]).toBe('');
      expect((await p.call('GetMetadata')).resources).toEqual([
        { typeName: 'cloudtaser_cluster_registration' },
        { typeName: 'cloudtaser_beacon_client_ca' },
      ]);
      expect(await p.shutdown()).toBe(0);
    } finally {
      p.kill();
    }
  });

  it('listens on TCP within PLUGIN_MIN_PORT..PLUGIN_MAX_PORT when asked', async () => {
    const p = await launchProvider(bundle, { network: 'tcp' });
    try {
      expect(p.fields[2]).toBe('tcp');
      const port = Number(p.fields[3].split(':')[1]);
      expect(p.fields[3].startsWith('127.0.0.1:')).toBe(true);
      expect(port).toBeGreaterThanOrEqual(10000);
      expect(port).toBeLessThanOrEqual(25000);
      expect(await p.shutdown()).toBe(0);
    } finally {
      p.kill();
    }
  });

  it('ignores SIGINT (Ctrl-C reaches the process group) and keeps serving; SIGTERM removes the socket', async () => {
    const p = await launchProvider(bundle, { env: { TF_LOG_PROVIDER: 'DEBUG' } });
    try {
      p.child.kill('SIGINT');
      // The provider has run its SIGINT handler once it logs that it ignored the signal; a process that exits
      // on SIGINT would have gone by then.
      await waitUntil(() => p.stderr().includes('"sigint_ignored"'), { what: 'the SIGINT handled' });
      expect((await p.call('StopProvider')).error).toBe('');
      expect(p.child.exitCode).toBeNull();
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      expect(existsSync(p.fields[3])).toBe(false);
    } finally {
      p.kill();
    }
  });

  it('exits by itself when terraform dies without calling Shutdown', async () => {
    // The shell plays Terraform: it starts the provider in the background (sharing its stdout pipe), then waits
    // on `read` until the test has seen the handshake line, i.e. until the provider has noted its parent. Only
    // then does the shell exit, so the provider is re-parented while watching (no timing assumption).
    const shell = spawn('sh', ['-c', '"$0" & echo "pid:$!"; read -r _', bundle], {
      env: {
        PATH: process.env.PATH ?? '',
        [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE,
        PLUGIN_PROTOCOL_VERSIONS: '6',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const shellExited = once(shell, 'exit');
    let out = '';
    shell.stdout.on('data', (d) => {
      out += d;
    });
    await vi.waitFor(() => expect(out).toMatch(/^1\|6\|unix\|/m), { timeout: 20_000, interval: 20 });
    const pid = Number(/pid:(\d+)/.exec(out)?.[1]);
    expect(pid).toBeGreaterThan(0);
    shell.stdin.end('\n');
    await shellExited;
    const alive = () => isProcessAlive(pid);
    // The provider polls its parent once a second; allow for a loaded machine.
    await vi.waitFor(() => expect(alive()).toBe(false), { timeout: 15_000, interval: 100 });
  }, 40_000);

  it('--debug prints one TF_REATTACH_PROVIDERS line for the Terraform and the OpenTofu address that terraform can use under either, and stops on Ctrl-C', async () => {
    const child = spawn(bundle, ['--debug'], { env: { PATH: process.env.PATH ?? '' } });
    const line = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const match = /TF_REATTACH_PROVIDERS='([^']+)'/.exec(out);
        if (match) resolve(match[1]);
      });
    });
    const reattach = JSON.parse(line);
    expect(Object.keys(reattach).sort()).toEqual([
      'registry.opentofu.org/cloudtaser/cloudtaser',
      'registry.terraform.io/cloudtaser/cloudtaser',
    ]);
    const config = reattach['registry.terraform.io/cloudtaser/cloudtaser'];
    expect(config).toMatchObject({ Protocol: 'grpc', ProtocolVersion: 6, Test: true, Pid: child.pid });
    expect(config.Addr.Network).toBe('unix');
    expect(reattach['registry.opentofu.org/cloudtaser/cloudtaser']).toEqual(config);
    // No tofu binary here: terraform itself resolves an explicit registry.opentofu.org source through the
    // same reattach key, which is the address OpenTofu gives `source = "cloudtaser/cloudtaser"`.
    for (const host of ['registry.terraform.io', 'registry.opentofu.org']) {
      const ws = createWorkspace({ env: { TF_REATTACH_PROVIDERS: line } });
      try {
        ws.write(
          'main.tf',
          `terraform {\n  required_providers {\n    cloudtaser = { source = "${host}/cloudtaser/cloudtaser" }\n  }\n}\n` +
            'output "ns" { value = provider::cloudtaser::namespace("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b") }\n',
        );
        const plan = await ws.run(['plan', '-no-color']);
        expect(plan.code, plan.stdout + plan.stderr).toBe(0);
        expect(plan.stdout).toContain('ns = "cloudtaser/6f1c2a3b"');
      } finally {
        ws.dispose();
      }
    }
    child.kill('SIGINT');
    expect(await new Promise((r) => child.on('exit', r))).toBe(0);
  });

  it('writes hclog JSON lines on stderr with six fractional digits in @timestamp', async () => {
    const p = await launchProvider(bundle, { env: { CLOUDTASER_PROVIDER_LOG_LEVEL: 'debug' } });
    try {
      await p.call('GetProviderSchema');
      await p.shutdown();
      const lines = p
        .stderr()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line['@timestamp']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
        expect(line).toHaveProperty('event');
        expect(line).toHaveProperty('@level');
      }
    } finally {
      p.kill();
    }
  });

  it('formats hclog timestamps with exactly six fractional digits', () => {
    expect(hclogTimestamp(new Date('2026-11-27T18:23:02.932Z'), 5)).toBe('2026-11-27T18:23:02.932005Z');
  });
});

describe('AutoMTLS certificate', () => {
  it('is valid DER that OpenSSL parses every time (serial never needs padding), for localhost, P-256, CA', () => {
    for (let i = 0; i < 300; i++) {
      const cert = createAutoMtlsCertificate();
      const x509 = new X509Certificate(cert.certDer);
      expect(x509.checkHost('localhost')).toBe('localhost');
      expect(x509.ca).toBe(true);
      expect(x509.verify(x509.publicKey)).toBe(true);
      expect(x509.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    }
  });
});
