/** What a resource handler of the Kubernetes test server receives and returns (dev-only). */
import type { Authorizer } from './rbac.js';
import type { ObjectStore } from './store.js';
import type { ServiceAccountTokenSigner } from './tokens.js';

/** Who made the request, after authentication. */
export interface UserInfo {
  readonly username: string;
  readonly uid: string;
  readonly groups: readonly string[];
  readonly extra: Record<string, string[]>;
  readonly isAdmin: boolean;
}

export interface ResourceRequest {
  readonly verb: string;
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly subresource?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly query: URLSearchParams;
  readonly body: unknown;
  readonly contentType: string;
  readonly accept: string | undefined;
  readonly user: UserInfo;
}

export interface HandlerResult {
  readonly status: number;
  readonly body: unknown;
  readonly warnings?: readonly string[];
  /** A response written over time (a watch); `body` is then unused. */
  readonly stream?: ResponseStream;
}

/** Where a streamed response writes: one chunk at a time, then the end of the response. */
export interface StreamSink {
  write(chunk: string): void;
  end(): void;
}

/** A streamed response: `open` starts writing and returns the function that stops it (client gone, server closing). */
export interface ResponseStream {
  readonly contentType: string;
  open(sink: StreamSink): () => void;
}

export interface ServerState {
  readonly store: ObjectStore;
  readonly signer: ServiceAccountTokenSigner;
  readonly authorizer: Authorizer;
  readonly adminToken: string;
  /** The API server's own audiences (used when a TokenRequest or TokenReview names none). */
  readonly apiAudiences: readonly string[];
  /** Minor version served; TokenReview metadata shape depends on it (wire-facts B0). */
  readonly minorVersion: number;
  /** How often a watch that allows bookmarks gets one (the API server's bookmarkFrequency is a minute). */
  readonly watchBookmarkIntervalMs: number;
}
