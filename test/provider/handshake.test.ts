import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAutoMtlsCertificate } from '../../provider/wire/automtls-cert.js';
import { hclogTimestamp } from '../../provider/wire/hclog.js';
import { MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE } from '../../provider/wire/serve.js';
import { runProcess } from '../run-process.js';
import { testBundle } from './support/bundle.js';
import { launchProvider } from './support/launch.js';

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

  it("refuses a TLS client that does not present terraform's client certificate", async () => {
    const p = await launchProvider(bundle);
    try {
      const padded = p.fields[5] + '='.repeat((4 - (p.fields[5].length % 4)) % 4);
      const pem = `-----BEGIN CERTIFICATE-----\n${padded.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
      const stranger = new grpc.Client(`unix:${p.fields[3]}`, grpc.credentials.createSsl(Buffer.from(pem)), {
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
    const p = await launchProvider(bundle);
    try {
      p.child.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 100));
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
    const shell = spawn('sh', ['-c', '"$0" & echo "pid:$!"; sleep 0.5', bundle], {
      env: {
        PATH: process.env.PATH ?? '',
        [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE,
        PLUGIN_PROTOCOL_VERSIONS: '6',
      },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    shell.stdout.on('data', (d) => {
      out += d;
    });
    await new Promise((r) => shell.on('exit', r));
    const pid = Number(/pid:(\d+)/.exec(out)?.[1]);
    expect(pid).toBeGreaterThan(0);
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 5000;
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(alive()).toBe(false);
  });

  it('--debug prints an export TF_REATTACH_PROVIDERS line that terraform can use, and stops on Ctrl-C', async () => {
    const child = spawn(bundle, ['--debug'], { env: { PATH: process.env.PATH ?? '' } });
    const line = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const match = /TF_REATTACH_PROVIDERS='([^']+)'/.exec(out);
        if (match) resolve(match[1]);
      });
    });
    const config = JSON.parse(line)['registry.terraform.io/cloudtaser/cloudtaser'];
    expect(config).toMatchObject({ Protocol: 'grpc', ProtocolVersion: 6, Test: true, Pid: child.pid });
    expect(config.Addr.Network).toBe('unix');
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
