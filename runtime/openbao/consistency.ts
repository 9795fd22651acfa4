/**
 * Read-your-own-writes over an OpenBao HA cluster. Since 2.5 standby nodes answer reads themselves and can lag
 * a write just made through the active node: a namespace created a moment ago is `namespace not found`, a KV
 * version just written is missing. The ledger remembers, per connection and for a bounded time, what this
 * process wrote (or learnt exists from a check-and-set conflict), so the client can tell "not replicated yet"
 * from "not there" and wait, bounded, for the read to catch up.
 *
 * An entry is dropped as soon as a read shows the write: from then on a read that contradicts it is taken as
 * what it is, most likely another process changing the record since (a re-registration, a re-arm), not lag.
 * Deletions are not waited for: they are seldom read back, and a later re-creation by another process would look
 * like lag. Only a change by another process between a write and its first read-back costs the wait, ending in
 * CT_OPENBAO_READ_LAG, whose message says so.
 */

/** What a KV read must show to be at least as new as what this process knows. */
export type KvExpectation =
  /** This process wrote version `version`: the read must show it or a later one. */
  | { readonly kind: 'at-least'; readonly version: number }
  /** A check-and-set against `version` lost: the current version is another one. */
  | { readonly kind: 'not'; readonly version: number };

interface Entry<T> {
  readonly value: T;
  readonly deadline: number;
}

/** More entries than any process writes within the bound; beyond it the oldest are dropped. */
const MAX_ENTRIES = 10_000;

export class WriteLedger {
  readonly boundMs: number;
  readonly #namespaces = new Map<string, Entry<true>>();
  readonly #kv = new Map<string, Entry<KvExpectation>>();
  readonly #mounts = new Map<string, Entry<string>>();

  constructor(boundMs: number) {
    this.boundMs = boundMs;
  }

  /** This process created the namespace at `path`: new and empty, whatever it wrote in one of that name before. */
  namespaceCreated(path: string): void {
    this.#forgetContentOf(path);
    this.#put(this.#namespaces, path, true);
  }

  /** A request in namespace `path` got an answer other than `namespace not found`: the standby shows it. */
  namespaceSeen(path: string): void {
    this.#namespaces.delete(path);
  }

  /**
   * The namespace at `path` and those below it are gone, with their mounts and records: nothing written there
   * before is to be waited for (a namespace of that name created next, by `deregister --purge` then `register` in
   * one process, would otherwise be read as lagging until the bound).
   */
  namespaceDeleted(path: string): void {
    for (const key of [...this.#namespaces.keys()]) if (within(key, path)) this.#namespaces.delete(key);
    this.#forgetContentOf(path);
  }

  #forgetContentOf(path: string): void {
    for (const map of [this.#kv, this.#mounts] as Map<string, unknown>[])
      for (const key of [...map.keys()]) if (within(key.slice(0, key.indexOf('|')), path)) map.delete(key);
  }

  /**
   * Until when a `namespace not found` for requests in `path` is replication lag rather than absence: this
   * process created that namespace within the bound. Undefined when it did not.
   */
  createdNamespaceDeadline(path: string): number | undefined {
    return this.#live(this.#namespaces, path)?.deadline;
  }

  kv(namespace: string, mount: string, key: string, expectation: KvExpectation): void {
    this.#put(this.#kv, `${namespace}|${mount}|${key}`, expectation);
  }

  kvExpectation(namespace: string, mount: string, key: string): Entry<KvExpectation> | undefined {
    return this.#live(this.#kv, `${namespace}|${mount}|${key}`);
  }

  /** A read showed what `kv` expected: later reads need not wait for it. */
  kvSeen(namespace: string, mount: string, key: string): void {
    this.#kv.delete(`${namespace}|${mount}|${key}`);
  }

  /** A secret engine (`kind` 'secret') or auth method ('auth') is mounted at `path` (with trailing slash). */
  mounted(namespace: string, kind: 'secret' | 'auth', path: string): void {
    this.#put(this.#mounts, `${namespace}|${kind}|${path}`, path);
  }

  /** A listing of `namespace` showed these mounts. */
  mountsSeen(namespace: string, kind: 'secret' | 'auth'): void {
    const prefix = `${namespace}|${kind}|`;
    for (const key of [...this.#mounts.keys()]) if (key.startsWith(prefix)) this.#mounts.delete(key);
  }

  /** Mount paths a listing of `namespace` must show, with the latest deadline among them. */
  expectedMounts(
    namespace: string,
    kind: 'secret' | 'auth',
  ): { paths: string[]; deadline: number } | undefined {
    const prefix = `${namespace}|${kind}|`;
    const paths: string[] = [];
    let deadline = 0;
    for (const key of [...this.#mounts.keys()]) {
      if (!key.startsWith(prefix)) continue;
      const entry = this.#live(this.#mounts, key);
      if (!entry) continue;
      paths.push(entry.value);
      deadline = Math.max(deadline, entry.deadline);
    }
    return paths.length === 0 ? undefined : { paths, deadline };
  }

  #put<T>(map: Map<string, Entry<T>>, key: string, value: T): void {
    map.delete(key);
    map.set(key, { value, deadline: Date.now() + this.boundMs });
    if (map.size > MAX_ENTRIES) map.delete(map.keys().next().value as string);
  }

  #live<T>(map: Map<string, Entry<T>>, key: string): Entry<T> | undefined {
    const entry = map.get(key);
    if (entry && entry.deadline <= Date.now()) {
      map.delete(key);
      return undefined;
    }
    return entry;
  }
}

/** Whether namespace `namespace` is `path` or below it. */
function within(namespace: string, path: string): boolean {
  return namespace === path || namespace.startsWith(`${path}/`);
}
