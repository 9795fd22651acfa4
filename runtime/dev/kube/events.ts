/** Core/v1 Events in the Kubernetes test server (dev-only): create, get and list with field selectors. */
import { listResult, metaFields, mustGet } from './crud.js';
import {
  checkSubdomainName,
  isRecord,
  labelsOf,
  objectBody,
  requireNamespace,
  resolveName,
} from './metadata.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { alreadyExists, invalid, methodNotAllowed } from './status.js';
import type { NewKubeObject } from './store.js';

const EVENT_SELECTABLE_FIELDS = [
  'metadata.name',
  'metadata.namespace',
  'involvedObject.kind',
  'involvedObject.namespace',
  'involvedObject.name',
  'involvedObject.uid',
  'involvedObject.apiVersion',
  'reason',
  'type',
  'source',
];

export function handleEvents(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'events', namespace, req.name as string) };
    case 'list':
    case 'watch':
      return listResult(state, req, 'events', 'EventList', namespace, EVENT_SELECTABLE_FIELDS, (o) => {
        const ref = (isRecord(o.involvedObject) ? o.involvedObject : {}) as Record<string, unknown>;
        const source = (isRecord(o.source) ? o.source : {}) as Record<string, unknown>;
        return {
          ...metaFields(o),
          'involvedObject.kind': String(ref.kind ?? ''),
          'involvedObject.namespace': String(ref.namespace ?? ''),
          'involvedObject.name': String(ref.name ?? ''),
          'involvedObject.uid': String(ref.uid ?? ''),
          'involvedObject.apiVersion': String(ref.apiVersion ?? ''),
          reason: String(o.reason ?? ''),
          type: String(o.type ?? ''),
          source: String(source.component ?? ''),
        };
      });
    case 'create': {
      const body = objectBody(req.body, 'Event');
      const ns = requireNamespace(state, req, body);
      const name = resolveName(body, 'Event');
      checkSubdomainName('Event', name);
      if (!isRecord(body.involvedObject)) {
        throw invalid('Event', '', name, [
          { field: 'involvedObject', value: '', why: 'involvedObject is required' },
        ]);
      }
      if (state.store.get('events', ns, name) !== undefined) throw alreadyExists('events', name);
      const { metadata: _ignored, ...rest } = body;
      const event = {
        ...rest,
        kind: 'Event',
        apiVersion: 'v1',
        metadata: {
          name,
          namespace: ns,
          ...(Object.keys(labelsOf(body)).length > 0 ? { labels: labelsOf(body) } : {}),
        },
      } as NewKubeObject;
      return { status: 201, body: state.store.create('events', event) };
    }
    default:
      throw methodNotAllowed();
  }
}
