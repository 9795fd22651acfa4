/**
 * In-memory object storage for the Kubernetes test server (dev-only). One global resourceVersion counter,
 * bumped on every change, as etcd's revision is on a real cluster (k8s.io/apiserver pkg/storage/etcd3
 * `store`: resourceVersion is the etcd ModRevision, shared by every object; uid and creationTimestamp are set
 * once on create by pkg/registry/rest/create.go `BeforeCreate`).
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

export class ObjectStore {
  private revision = 1;
  private readonly objects = new Map<string, KubeObject>();

  /** The newest resourceVersion, which list responses carry. */
  currentResourceVersion(): string {
    return String(this.revision);
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.objects.get(storeKey(resource, namespace, name));
    return found === undefined ? undefined : structuredClone(found);
  }

  /** Objects of one resource, in one namespace or all, sorted by namespace then name like etcd's key order. */
  list(resource: string, namespace: string | undefined): KubeObject[] {
    const prefix = namespace === undefined ? `${resource}/` : `${resource}/${namespace}/`;
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
    return structuredClone(stored);
  }

  /** Replaces an existing object and bumps its resourceVersion. */
  update(resource: string, object: KubeObject): KubeObject {
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = this.nextRevision();
    this.objects.set(storeKey(resource, stored.metadata.namespace, stored.metadata.name), stored);
    return structuredClone(stored);
  }

  delete(resource: string, namespace: string | undefined, name: string): boolean {
    const deleted = this.objects.delete(storeKey(resource, namespace, name));
    if (deleted) this.nextRevision();
    return deleted;
  }

  private nextRevision(): string {
    this.revision += 1;
    return String(this.revision);
  }
}

function storeKey(resource: string, namespace: string | undefined, name: string): string {
  return namespace === undefined ? `${resource}/${name}` : `${resource}/${namespace}/${name}`;
}
