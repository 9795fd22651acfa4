/**
 * Watch streams of the Kubernetes test server (dev-only): `GET <collection>?watch=true` answers 200 and then
 * writes one JSON watch event per line, `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{…}}`, over
 * a chunked response until `timeoutSeconds` ends it (Kubernetes API concepts, "Efficient detection of changes"
 * and "Watch bookmarks"; k8s.io/apiserver pkg/endpoints/handlers/watch.go). What is sent follows the watch
 * cache (k8s.io/apiserver pkg/storage/cacher):
 * - without a resourceVersion (or "0"), a synthetic ADDED for every current object first, then the changes;
 *   with one, only the changes after it (`watchCache.getAllEventsSinceLocked`);
 * - a resourceVersion older than the kept history is not a failed request but a 200 stream holding one ERROR
 *   event whose Status is 410 Expired "too old resource version: N (M)" (cacher `newErrWatcher`);
 * - selectors apply to both sides of a change: an object that starts matching is ADDED, one that stops
 *   matching is DELETED with its previous content at the event's resourceVersion (`convertToWatchEvent`);
 * - with `allowWatchBookmarks=true`, a BOOKMARK (an empty object of the kind carrying the current
 *   resourceVersion) every bookmark interval, or about 2 s before the timeout if that comes first
 *   (cacheWatcher `nextBookmarkTime`);
 * - `sendInitialEvents=true` (watch-list) sends the current objects and then a BOOKMARK annotated
 *   `k8s.io/initial-events-end: "true"`.
 */
import type { HandlerResult, ResourceRequest, ServerState, StreamSink } from './requests.js';
import { badRequest, KubeStatusError } from './status.js';
import type { KubeObject, StoreEvent } from './store.js';
import { toTable, wantsTable } from './table.js';

/** What a watch needs to know about the collection it watches. */
export interface WatchedCollection {
  readonly resource: string;
  readonly kind: string;
  readonly apiVersion: string;
  readonly namespace: string | undefined;
  /** The request's label and field selectors. */
  readonly matches: (object: KubeObject) => boolean;
}

type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** Without `timeoutSeconds` the API server picks a timeout around its --min-request-timeout (1800 s). */
const DEFAULT_TIMEOUT_SECONDS = 1800;
/** The watch cache sends the last bookmark this long before the timeout closes the watch. */
const BOOKMARK_BEFORE_TIMEOUT_MS = 2000;
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

export function watchCollection(
  state: ServerState,
  req: ResourceRequest,
  collection: WatchedCollection,
): HandlerResult {
  const resourceVersion = req.query.get('resourceVersion') ?? '';
  if (resourceVersion !== '' && !/^(0|[1-9][0-9]*)$/.test(resourceVersion))
    throw badRequest(`invalid resource version: ${JSON.stringify(resourceVersion)}`);
  const timeoutSeconds = nonNegativeInteger(req.query.get('timeoutSeconds'), 'timeoutSeconds');
  const bookmarks = req.query.get('allowWatchBookmarks') === 'true';
  const sendInitialEvents = req.query.get('sendInitialEvents');
  const initialEvents =
    sendInitialEvents === null
      ? resourceVersion === '' || resourceVersion === '0'
      : sendInitialEvents === 'true';
  const from =
    resourceVersion === '' || resourceVersion === '0' || initialEvents
      ? state.store.currentRevision()
      : Number(resourceVersion);
  const asTable = wantsTable(req.accept);
  const { store } = state;

  const wire = (object: KubeObject): object => {
    const table = asTable
      ? toTable(collection.resource, [object], object.metadata.resourceVersion)
      : undefined;
    return table ?? object;
  };
  const bookmark = (annotations?: Record<string, string>): object => {
    const resourceVersion = store.currentResourceVersion();
    if (asTable)
      return {
        kind: 'Table',
        apiVersion: 'meta.k8s.io/v1',
        metadata: { resourceVersion },
        columnDefinitions: [],
        rows: [],
      };
    return {
      kind: collection.kind,
      apiVersion: collection.apiVersion,
      metadata: { resourceVersion, ...(annotations === undefined ? {} : { annotations }) },
    };
  };
  const inCollection = (event: StoreEvent): boolean =>
    event.resource === collection.resource &&
    (collection.namespace === undefined || event.object.metadata.namespace === collection.namespace);

  return {
    status: 200,
    body: undefined,
    stream: {
      contentType: 'application/json',
      open(sink: StreamSink): () => void {
        const send = (type: WatchEventType, object: object): void =>
          sink.write(`${JSON.stringify({ type, object })}\n`);
        const backlog = store.eventsSince(from);
        if (backlog === undefined) {
          const expired = new KubeStatusError(
            410,
            'Expired',
            `too old resource version: ${from} (${store.compactedRevision()})`,
          );
          send('ERROR', expired.body);
          sink.end();
          return () => undefined;
        }
        const deliver = (event: StoreEvent): void => {
          if (event.revision <= from || !inCollection(event)) return;
          const now = event.type !== 'DELETED' && collection.matches(event.object);
          const before = event.previous !== undefined && collection.matches(event.previous);
          if (now && !before) send('ADDED', wire(event.object));
          else if (now && before) send('MODIFIED', wire(event.object));
          else if (before) {
            const gone = structuredClone(event.previous as KubeObject);
            gone.metadata.resourceVersion = String(event.revision);
            send('DELETED', wire(gone));
          }
        };

        if (initialEvents) {
          for (const object of store.list(collection.resource, collection.namespace))
            if (collection.matches(object)) send('ADDED', wire(object));
          if (sendInitialEvents === 'true' && bookmarks)
            send('BOOKMARK', bookmark({ [INITIAL_EVENTS_END]: 'true' }));
        }
        for (const event of backlog) deliver(event);
        const unsubscribe = store.subscribe(deliver);

        // 0 means unset, as in the API server's watch handler.
        const deadline = Date.now() + (timeoutSeconds || DEFAULT_TIMEOUT_SECONDS) * 1000;
        let bookmarkTimer: NodeJS.Timeout | undefined;
        const scheduleBookmark = (): void => {
          if (!bookmarks) return;
          const now = Date.now();
          const at = Math.min(now + state.watchBookmarkIntervalMs, deadline - BOOKMARK_BEFORE_TIMEOUT_MS);
          if (at <= now) return;
          bookmarkTimer = setTimeout(() => {
            send('BOOKMARK', bookmark());
            scheduleBookmark();
          }, at - now);
        };
        scheduleBookmark();
        let stopped = false;
        const stop = (): void => {
          if (stopped) return;
          stopped = true;
          unsubscribe();
          clearTimeout(bookmarkTimer);
          clearTimeout(timeout);
        };
        const timeout = setTimeout(() => {
          stop();
          sink.end();
        }, deadline - Date.now());
        return stop;
      },
    },
  };
}

function nonNegativeInteger(text: string | null, name: string): number | undefined {
  if (text === null || text === '') return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw badRequest(`invalid ${name}: ${JSON.stringify(text)}`);
  return value;
}
