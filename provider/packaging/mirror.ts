/**
 * Installs the bundled provider into a filesystem mirror and computes the lock-file hash.
 * A JS provider is the same bytes on every platform, so one `h1:` hash is valid for all of them.
 *
 * Terraform and OpenTofu read the same mirror layout (OpenTofu's installer is a fork of Terraform's
 * `internal/getproviders` and `internal/providercache`) but resolve `source = "cloudtaser/cloudtaser"` to
 * different hosts: registry.terraform.io and registry.opentofu.org. So every package is written under both
 * hosts, byte for byte the same, and the lock hash is the same for both addresses.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateRawSync } from 'node:zlib';
import { CloudtaserError } from '../../runtime/core/errors.js';
import {
  PROVIDER_ADDRESS,
  PROVIDER_ADDRESSES,
  PROVIDER_HOSTS,
  PROVIDER_SOURCE,
  PROVIDER_VERSION,
} from '../cloudtaser.js';
import { BUNDLE_FILE_NAME } from './bundle-name.js';
import { DEFAULT_PLATFORMS } from './platforms.js';

export { DEFAULT_PLATFORMS };

export interface InstallProviderMirrorOptions {
  /** `unpacked` (HOST/NS/TYPE/VERSION/OS_ARCH/ dirs) or `packed` (zips). @default 'unpacked' */
  readonly layout?: 'unpacked' | 'packed';
  readonly platforms?: readonly string[];
  /** The single-file bundle. @default dist/provider/terraform-provider-cloudtaser.cjs of this package */
  readonly bundlePath?: string;
  readonly version?: string;
}

export interface InstalledProviderMirror {
  readonly mirrorDir: string;
  /** Terraform's address of the provider (registry.terraform.io/...). */
  readonly providerAddress: string;
  /** Every address the mirror serves: Terraform's and OpenTofu's. */
  readonly providerAddresses: readonly string[];
  readonly version: string;
  /** `h1:...` for `.terraform.lock.hcl`, the same on every platform. */
  readonly h1: string;
  /** A `provider_installation { ... }` block for the CLI configuration of Terraform and of OpenTofu. */
  readonly cliConfig: string;
  /** A `.terraform.lock.hcl` entry that pins this build for Terraform. */
  readonly lockFileEntry: string;
  /** The same entry per address (OpenTofu's lock file names registry.opentofu.org/...). */
  readonly lockFileEntries: Readonly<Record<string, string>>;
  readonly files: readonly string[];
}

export function installProviderMirror(
  dir: string,
  options: InstallProviderMirrorOptions = {},
): InstalledProviderMirror {
  const mirrorDir = resolve(dir);
  const version = options.version ?? PROVIDER_VERSION;
  const bundlePath = options.bundlePath ?? findBundle();
  const executable = fileSystemStep(
    () => readFileSync(bundlePath),
    `cannot read ${options.bundlePath ? '--bundle' : 'the provider bundle'} ${bundlePath}`,
  );
  const [namespace, type] = PROVIDER_SOURCE.split('/');
  const executableName = `terraform-provider-${type}_v${version}`;
  const platforms = options.platforms ?? DEFAULT_PLATFORMS;
  const files: string[] = [];

  for (const platform of platforms) {
    if (!/^[a-z0-9]+_[a-z0-9]+$/.test(platform)) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `platform "${platform}" is not OS_ARCH such as linux_amd64`,
      );
    }
    for (const host of PROVIDER_HOSTS) {
      const typeDir = join(mirrorDir, host, namespace, type);
      files.push(
        fileSystemStep(
          () =>
            installPackage({ typeDir, type, version, platform, executableName, executable }, options.layout),
          `cannot write into --mirror ${mirrorDir}`,
        ),
      );
    }
  }
  const h1 = hashFiles([
    { path: executableName, data: executable },
    { path: PACKAGE_SCOPE_FILE.name, data: PACKAGE_SCOPE_FILE.data },
  ]);
  return {
    mirrorDir,
    providerAddress: PROVIDER_ADDRESS,
    providerAddresses: PROVIDER_ADDRESSES,
    version,
    h1,
    cliConfig: providerInstallationBlock(mirrorDir),
    lockFileEntry: lockFileEntry(version, h1),
    lockFileEntries: Object.fromEntries(
      PROVIDER_ADDRESSES.map((address) => [address, lockFileEntry(version, h1, address)]),
    ),
    files,
  };
}

/**
 * Runs a file-system step; a failure of the system call (ENOENT, ENOTDIR, EACCES...) is a path the user gave,
 * so it becomes CT_INVALID_ARGUMENT with `what` (which names the flag), not an unexplained crash.
 */
function fileSystemStep<T>(step: () => T, what: string): T {
  try {
    return step();
  } catch (err) {
    const { code, path } = err as NodeJS.ErrnoException;
    if (err instanceof CloudtaserError || typeof code !== 'string') throw err;
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${what}: ${code}${path && !what.endsWith(path) ? ` at ${path}` : ''}`,
      {
        cause: err,
        details: { path },
      },
    );
  }
}

/**
 * Beside the executable in every package: the bundle is CommonJS in a file without an extension, and Node takes
 * the module type of such a file from the nearest package.json. Without this one, a mirror (or, with the packed
 * layout, a Terraform working directory, where Terraform unpacks the zip) inside a project with
 * `"type": "module"` made Node refuse the provider (ERR_UNKNOWN_FILE_EXTENSION) and Terraform say only "Failed
 * to read any lines from plugin's stdout".
 */
export const PACKAGE_SCOPE_FILE = { name: 'package.json', data: Buffer.from('{"type":"commonjs"}\n') };

interface PackageToInstall {
  /** <mirror>/<host>/<namespace>/<type> */
  readonly typeDir: string;
  readonly type: string;
  readonly version: string;
  readonly platform: string;
  readonly executableName: string;
  readonly executable: Buffer;
}

/** Writes one platform's package under one host; returns the zip or the executable written. */
function installPackage(
  { typeDir, type, version, platform, executableName, executable }: PackageToInstall,
  layout: InstallProviderMirrorOptions['layout'],
): string {
  if (layout === 'packed') {
    mkdirSync(typeDir, { recursive: true });
    const zipPath = join(typeDir, `terraform-provider-${type}_${version}_${platform}.zip`);
    writeFileSync(
      zipPath,
      createZip([
        { name: executableName, data: executable, mode: 0o755 },
        { name: PACKAGE_SCOPE_FILE.name, data: PACKAGE_SCOPE_FILE.data, mode: 0o644 },
      ]),
    );
    return zipPath;
  } else {
    const packageDir = join(typeDir, version, platform);
    mkdirSync(packageDir, { recursive: true });
    // Only one file may start with terraform-provider-TYPE in a package dir (Terraform picks the first).
    for (const existing of readdirSync(packageDir)) {
      if (existing.startsWith(`terraform-provider-${type}`) && existing !== executableName) {
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `${join(packageDir, existing)} would shadow the provider executable; remove it and run install again`,
        );
      }
    }
    const target = join(packageDir, executableName);
    writeFileSync(target, executable);
    chmodSync(target, 0o755);
    writeFileSync(join(packageDir, PACKAGE_SCOPE_FILE.name), PACKAGE_SCOPE_FILE.data);
    return target;
  }
}

/** Terraform's "h1:" hash (Go dirhash Hash1) over a package's files. */
export function hashFiles(entries: readonly { path: string; data: Uint8Array }[]): string {
  const lines = [...entries]
    .map((e) => ({ path: e.path.split(sep).join('/'), data: e.data }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((e) => {
      if (e.path.includes('\n'))
        throw new CloudtaserError('CT_INVALID_ARGUMENT', 'file names with newlines cannot be hashed');
      return `${createHash('sha256').update(e.data).digest('hex')}  ${e.path}\n`;
    })
    .join('');
  return `h1:${createHash('sha256').update(lines).digest('base64')}`;
}

/** The h1 hash of an unpacked package directory, as `terraform init` computes it. */
export function hashPackageDir(dir: string): string {
  const entries: { path: string; data: Uint8Array }[] = [];
  const walk = (current: string) => {
    for (const name of readdirSync(current)) {
      const full = join(current, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) entries.push({ path: relative(dir, full), data: readFileSync(full) });
    }
  };
  walk(dir);
  return hashFiles(entries);
}

/**
 * The `provider_installation` block, for `~/.terraformrc` (Terraform) or `~/.tofurc` (OpenTofu), or the file
 * TF_CLI_CONFIG_FILE names (both read it). It covers both addresses, so one file serves both tools.
 */
export function providerInstallationBlock(mirrorDir: string): string {
  const addresses = PROVIDER_ADDRESSES.map((address) => JSON.stringify(address)).join(', ');
  return [
    'provider_installation {',
    '  filesystem_mirror {',
    `    path    = ${JSON.stringify(mirrorDir)}`,
    `    include = [${addresses}]`,
    '  }',
    '  direct {',
    `    exclude = [${addresses}]`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export function lockFileEntry(version: string, h1: string, address: string = PROVIDER_ADDRESS): string {
  return [
    `provider ${JSON.stringify(address)} {`,
    `  version     = ${JSON.stringify(version)}`,
    `  constraints = ${JSON.stringify(version)}`,
    '  hashes = [',
    `    ${JSON.stringify(h1)},`,
    '  ]',
    '}',
    '',
  ].join('\n');
}

function findBundle(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    resolve(here, '..', BUNDLE_FILE_NAME), // dist/provider/packaging -> dist/provider
    resolve(here, '..', '..', 'dist', 'provider', BUNDLE_FILE_NAME), // source tree
  ];
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `the provider bundle ${BUNDLE_FILE_NAME} was not found (looked in ${candidates.join(', ')}); run npm run build first`,
    );
  }
  return found;
}

/** A minimal zip writer (deflate, Unix mode bits kept so the script stays executable after unzip). */
export function createZip(entries: readonly { name: string; data: Uint8Array; mode?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  // Fixed timestamp (1980-01-01) so the same input gives the same zip bytes.
  const dosTime = 0;
  const dosDate = (0 << 9) | (1 << 5) | 1;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const compressed = deflateRawSync(entry.data, { level: 9 });
    const crc = crc32(entry.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(dosTime, 10);
    local.writeUInt16LE(dosDate, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(entry.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, compressed);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix, so external attributes carry the mode
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(dosTime, 12);
    central.writeUInt16LE(dosDate, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(entry.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((((entry.mode ?? 0o644) | 0o100000) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + compressed.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}
