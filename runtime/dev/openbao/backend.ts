/**
 * DEV-ONLY test infrastructure: the contract between the test server's router and its backends
 * (system, KV v2, token, kubernetes, approle), mirroring OpenBao's logical request.
 */
import type { Mount, Namespace } from './namespaces.js';
import type { TokenEntry } from './tokens.js';
import type { BaoResponse } from './wire.js';

/** OpenBao's logical operations. POST/PUT arrive as `update` and become `create` when the target is missing. */
export type Operation = 'read' | 'list' | 'scan' | 'create' | 'update' | 'delete' | 'patch';

export interface BaoRequest {
  readonly operation: Operation;
  /** Namespace-relative path (e.g. `secret/data/app`); LIST/SCAN paths end in `/`. */
  readonly path: string;
  /** Path relative to the mount (e.g. `data/app`). */
  readonly mountPath: string;
  readonly mount: Mount;
  readonly namespace: Namespace;
  readonly body: Record<string, unknown>;
  readonly query: URLSearchParams;
  /** Undefined on unauthenticated (login) paths. */
  readonly token: TokenEntry | undefined;
}

export interface Backend {
  /** Whether the target of a write exists, to pick the `create` or `update` capability. Absent = `update`. */
  exists?(request: BaoRequest): boolean;
  /** Paths (relative to the mount) that need no token, like `login`. */
  isUnauthenticated?(mountPath: string): boolean;
  /**
   * Root-protected paths relative to the mount (OpenBao's PathsSpecial.Root): a non-root token needs `sudo` on
   * them besides the operation's capability. A trailing `*` is a prefix.
   */
  readonly rootPaths?: readonly string[];
  handle(request: BaoRequest): Promise<BaoResponse> | BaoResponse;
  /** Releases sockets the backend opened (the Kubernetes reviewer's connection pool). */
  close?(): Promise<void>;
}
