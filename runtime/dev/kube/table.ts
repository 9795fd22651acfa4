/**
 * Server-side printing (`meta.k8s.io/v1` Table), which kubectl asks for on `kubectl get` (dev-only).
 */
import type { KubeObject } from './store.js';

interface Column {
  readonly name: string;
  readonly type: string;
  readonly format?: string;
  readonly cell: (o: KubeObject) => string | number;
}

const nameColumn: Column = { name: 'Name', type: 'string', format: 'name', cell: (o) => o.metadata.name };
const ageColumn: Column = { name: 'Age', type: 'string', cell: (o) => age(o.metadata.creationTimestamp) };

const COLUMNS: Record<string, readonly Column[]> = {
  namespaces: [
    nameColumn,
    {
      name: 'Status',
      type: 'string',
      cell: (o) => String((o.status as { phase?: string } | undefined)?.phase ?? ''),
    },
    ageColumn,
  ],
  secrets: [
    nameColumn,
    { name: 'Type', type: 'string', cell: (o) => String(o.type ?? '') },
    { name: 'Data', type: 'string', cell: (o) => Object.keys((o.data as object | undefined) ?? {}).length },
    ageColumn,
  ],
  serviceaccounts: [
    nameColumn,
    { name: 'Secrets', type: 'string', cell: (o) => ((o.secrets as unknown[] | undefined) ?? []).length },
    ageColumn,
  ],
  events: [
    {
      name: 'Last Seen',
      type: 'string',
      cell: (o) => age(String(o.lastTimestamp ?? o.metadata.creationTimestamp)),
    },
    { name: 'Type', type: 'string', cell: (o) => String(o.type ?? '') },
    { name: 'Reason', type: 'string', cell: (o) => String(o.reason ?? '') },
    { name: 'Object', type: 'string', cell: (o) => involvedObject(o) },
    { name: 'Message', type: 'string', cell: (o) => String(o.message ?? '') },
  ],
  // The API server's printer for Leases (K8S pkg/printers/internalversion `printLease`): Name, Holder, Age.
  leases: [
    nameColumn,
    {
      name: 'Holder',
      type: 'string',
      cell: (o) => String((o.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? ''),
    },
    ageColumn,
  ],
  mutatingwebhookconfigurations: [
    nameColumn,
    { name: 'Webhooks', type: 'integer', cell: (o) => ((o.webhooks as unknown[] | undefined) ?? []).length },
    ageColumn,
  ],
};

/** True when the client's Accept header asks for a Table (kubectl's default human output). */
export function wantsTable(accept: string | undefined): boolean {
  return accept !== undefined && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

export function toTable(
  resource: string,
  objects: readonly KubeObject[],
  resourceVersion: string,
): object | undefined {
  const columns = COLUMNS[resource];
  if (columns === undefined) return undefined;
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: columns.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: '',
      priority: 0,
    })),
    rows: objects.map((o) => ({
      cells: columns.map((c) => c.cell(o)),
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}

function involvedObject(o: KubeObject): string {
  const ref = (o.involvedObject ?? {}) as { kind?: string; name?: string };
  return `${String(ref.kind ?? '').toLowerCase()}/${ref.name ?? ''}`;
}

function age(timestamp: string): string {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(timestamp)) / 1000));
  if (Number.isNaN(seconds)) return '<unknown>';
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}
