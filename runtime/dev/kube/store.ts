/**
 * In-memory object storage for the Kubernetes test server (dev-only). One global resourceVersion counter,
 * bumped on every change, as etcd's revision is on a real cluster (k8s.io/apiserver pkg/storage/etcd3
 * `store`: resourceVersion is the etcd ModRevision, shared by every object; uid and creationTimestamp are set
 * once on create by pkg/registry/rest/create.go `BeforeCreate`).
 *
 * Every change is also kept as an event for the last `historyLimit` revisions, which stands for etcd's history
 * before compaction and the API server's watch cache: watches resume from it and continue tokens read the
 * list as it was at their resourceVersion. Anything older is compacted, and asking for it is a 410 Expired.
 */
import { randomUUID } from 'node:crypto';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface KubeObject {
  kind: string;
  apiVersion: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/** An object before the store has given it uid, resourceVersion and creationTimestamp. */
export interface NewKubeObject {
  kind: string;
  apiVersion: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export type StoreEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One change, as a watch reports it. */
export interface StoreEvent {
  readonly type: StoreEventType;
  readonly resource: string;
  readonly revision: number;
  /**
   * The object after the change. For DELETED, its last state carrying the deletion's resourceVersion, which is
   * what the API server sends in a DELETED watch event.
   */
  readonly object: KubeObject;
  /** The object before the change (MODIFIED and DELETED). */
  readonly previous?: KubeObject;
}

/** How many revisions the store keeps for watches and continue tokens unless told otherwise. */
export const DEFAULT_HISTORY_LIMIT = 1000;

export class ObjectStore {
  private revision = 1;
  /** The newest revision no longer in `history`: a watch or continue token from before it has expired. */
  private compacted = 1;
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: StoreEvent[] = [];
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private readonly historyLimit: number;

  constructor(historyLimit: number = DEFAULT_HISTORY_LIMIT) {
    if (!Number.isInteger(historyLimit) || historyLimit < 1)
      throw new TypeError(`historyLimit must be a positive integer, got ${historyLimit}`);
    this.historyLimit = historyLimit;
  }

  /** The newest resourceVersion, which list responses carry. */
  currentResourceVersion(): string {
    return String(this.revision);
  }

  /** The newest revision; changes after it are all still in the history. */
  currentRevision(): number {
    return this.revision;
  }

  /** Revisions below this one are compacted. */
  compactedRevision(): number {
    return this.compacted;
  }

  /** Changes after `revision`, oldest first; undefined when some of them are compacted. */
  eventsSince(revision: number): StoreEvent[] | undefined {
    if (revision < this.compacted) return undefined;
    return this.history.filter((e) => e.revision > revision);
  }

  /** Calls `listener` with every later change; returns the function that stops it. */
  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Objects of one resource as they were at `revision` (the current ones undone back to it), in key order;
   * undefined when that revision is compacted.
   */
  listAt(resource: string, namespace: string | undefined, revision: number): KubeObject[] | undefined {
    const events = this.eventsSince(revision);
    if (events === undefined) return undefined;
    const prefix = listPrefix(resource, namespace);
    const state = new Map<string, KubeObject>();
    for (const [key, object] of this.objects) if (key.startsWith(prefix)) state.set(key, object);
    for (const event of events.reverse()) {
      if (event.resource !== resource) continue;
      const key = storeKey(resource, event.object.metadata.namespace, event.object.metadata.name);
      if (!key.startsWith(prefix)) continue;
      if (event.type === 'ADDED') state.delete(key);
      else state.set(key, event.previous as KubeObject);
    }
    return [...state.keys()].sort().map((k) => structuredClone(state.get(k) as KubeObject));
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.objects.get(storeKey(resource, namespace, name));
    return found === undefined ? undefined : structuredClone(found);
  }

  /** Objects of one resource, in one namespace or all, sorted by namespace then name like etcd's key order. */
  list(resource: string, namespace: string | undefined): KubeObject[] {
    const prefix = listPrefix(resource, namespace);
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    return keys.map((k) => structuredClone(this.objects.get(k) as KubeObject));
  }

  /** Stores a new object, filling in uid, resourceVersion and creationTimestamp. Caller checks for clashes. */
  create(resource: string, object: NewKubeObject, uid: string = randomUUID()): KubeObject {
    const stored = structuredClone(object) as KubeObject;
    stored.metadata.uid = uid;
    stored.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    stored.metadata.resourceVersion = this.nextRevision();
    this.objects.set(storeKey(resource, stored.metadata.namespace, stored.metadata.name), stored);
    this.record({ type: 'ADDED', resource, revision: this.revision, object: stored });
    return structuredClone(stored);
  }

  /** Replaces an existing object and bumps its resourceVersion. */
  update(resource: string, object: KubeObject): KubeObject {
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = this.nextRevision();
    const key = storeKey(resource, stored.metadata.namespace, stored.metadata.name);
    const previous = this.objects.get(key);
    this.objects.set(key, stored);
    this.record(
      previous === undefined
        ? { type: 'ADDED', resource, revision: this.revision, object: stored }
        : { type: 'MODIFIED', resource, revision: this.revision, object: stored, previous },
    );
    return structuredClone(stored);
  }

  delete(resource: string, namespace: string | undefined, name: string): boolean {
    const key = storeKey(resource, namespace, name);
    const previous = this.objects.get(key);
    if (previous === undefined) return false;
    this.objects.delete(key);
    const object = structuredClone(previous);
    object.metadata.resourceVersion = this.nextRevision();
    this.record({ type: 'DELETED', resource, revision: this.revision, object, previous });
    return true;
  }

  private nextRevision(): string {
    this.revision += 1;
    return String(this.revision);
  }

  /** Keeps the event (objects in the history are never handed out uncloned) and tells the watchers. */
  private record(event: StoreEvent): void {
    this.history.push(event);
    while (this.history.length > this.historyLimit)
      this.compacted = (this.history.shift() as StoreEvent).revision;
    for (const listener of this.listeners) listener(event);
  }
}

function listPrefix(resource: string, namespace: string | undefined): string {
  return namespace === undefined ? `${resource}/` : `${resource}/${namespace}/`;
}

function storeKey(resource: string, namespace: string | undefined, name: string): string {
  return namespace === undefined ? `${resource}/${name}` : `${resource}/${namespace}/${name}`;
}
