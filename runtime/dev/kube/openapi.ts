/**
 * OpenAPI v3 documents of the Kubernetes test server (dev-only), generated from the resource table in
 * discovery.ts. kubectl reads them before `apply` and `create -f`: `GET /openapi/v3` lists one document per
 * group-version (`{"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=…"}}}`, k8s.io/kube-openapi
 * pkg/handler3), and kubectl's field-validation check looks in that group-version's document for the PATCH
 * operation tagged `x-kubernetes-group-version-kind` with the kind, and for a `fieldValidation` query parameter
 * on it (kubectl pkg/cmd/util QueryParamVerifierV3). Found, kubectl sends `fieldValidation=Strict` and leaves
 * validation to the server, which checks fields itself (metadata.ts `checkFields`); not found, it validates
 * client-side against `/openapi/v2`, a protobuf document this server does not serve.
 *
 * The schemas are deliberately minimal (each kind an object with apiVersion, kind and metadata that keeps
 * unknown fields), written here rather than taken from the upstream spec: the server is the validator. For
 * the same reason the PATCH request bodies list no strategic merge patch: kubectl then computes `apply`'s
 * patch from its compiled-in types, whose merge keys are right, instead of from these schemas, which have none
 * (kubectl apply `gvkSupportsPatchOpenAPIV3`).
 */
import { createHash } from 'node:crypto';
import { RESOURCES, type ResourceDefinition } from './discovery.js';
import { APPLY_PATCH, JSON_PATCH, MERGE_PATCH } from './patch.js';

const JSON_TYPE = 'application/json';

/** `api/v1` or `apis/<group>/<version>`: how the index and kubectl name a group-version's document. */
function documentPath(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

/** Every group-version's document, by document path, built once: the table does not change at run time. */
const DOCUMENTS: ReadonlyMap<string, { readonly text: string; readonly hash: string }> = (() => {
  const byPath = new Map<string, ResourceDefinition[]>();
  for (const r of RESOURCES) {
    const path = documentPath(r.group, r.version);
    byPath.set(path, [...(byPath.get(path) ?? []), r]);
  }
  const out = new Map<string, { text: string; hash: string }>();
  for (const [path, resources] of byPath) {
    const text = JSON.stringify(groupVersionDocument(path, resources));
    out.set(path, { text, hash: createHash('sha512').update(text).digest('hex').toUpperCase() });
  }
  return out;
})();

/** The body of `GET /openapi/v3`. */
export function openApiIndex(): object {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const [path, { hash }] of DOCUMENTS)
    paths[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${hash}` };
  return { paths };
}

/** The JSON text of `GET /openapi/v3/<document path>`, or undefined for a group-version not served. */
export function openApiDocument(path: string): string | undefined {
  return DOCUMENTS.get(path)?.text;
}

function groupVersionDocument(path: string, resources: readonly ResourceDefinition[]): object {
  const paths: Record<string, object> = {};
  const schemas: Record<string, object> = {};
  for (const r of resources) {
    const schemaName = `io.cloudtaser.test.${r.group === '' ? 'core' : r.group}.${r.version}.${r.kind}`;
    const ref = { $ref: `#/components/schemas/${schemaName}` };
    schemas[schemaName] = kindSchema(r);
    const base = r.namespaced ? `/${path}/namespaces/{namespace}/${r.name}` : `/${path}/${r.name}`;
    const scope = r.namespaced ? [pathParameter('namespace')] : [];
    const operation = (action: string, extra: object = {}): object => ({
      operationId: `${action}${r.kind}`,
      'x-kubernetes-action': action,
      'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
      responses: { '200': { description: 'OK', content: { [JSON_TYPE]: { schema: ref } } } },
      ...extra,
    });
    const writeParameters = [
      queryParameter('dryRun'),
      queryParameter('fieldManager'),
      queryParameter('fieldValidation'),
    ];
    const collection: Record<string, object> = { parameters: scope };
    if (r.verbs.includes('list'))
      collection.get = operation('list', {
        parameters: [
          'labelSelector',
          'fieldSelector',
          'limit',
          'continue',
          'resourceVersion',
          'timeoutSeconds',
          'watch',
        ].map(queryParameter),
      });
    if (r.verbs.includes('create'))
      collection.post = operation('post', {
        parameters: writeParameters,
        requestBody: { required: true, content: { [JSON_TYPE]: { schema: ref } } },
      });
    const item: Record<string, object> = { parameters: [pathParameter('name'), ...scope] };
    if (r.verbs.includes('get')) item.get = operation('get');
    if (r.verbs.includes('update'))
      item.put = operation('put', {
        parameters: writeParameters,
        requestBody: { required: true, content: { [JSON_TYPE]: { schema: ref } } },
      });
    // kubectl looks for fieldValidation on the PATCH operation only, also before a create; every kind that
    // can be written is described with one, as on a real server (where all of them take patches).
    if (r.verbs.includes('patch') || r.verbs.includes('create'))
      item.patch = operation('patch', {
        parameters: [...writeParameters, queryParameter('force')],
        requestBody: {
          required: true,
          content: Object.fromEntries(
            [JSON_PATCH, MERGE_PATCH, APPLY_PATCH].map((type) => [type, { schema: { type: 'object' } }]),
          ),
        },
      });
    if (r.verbs.includes('delete'))
      item.delete = operation('delete', { parameters: [queryParameter('dryRun')] });
    if (Object.keys(collection).length > 1) paths[base] = collection;
    if (Object.keys(item).length > 1) paths[`${base}/{name}`] = item;
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes (cloudtaser test server)', version: 'unversioned' },
    paths,
    components: { schemas },
  };
}

function kindSchema(r: ResourceDefinition): object {
  return {
    type: 'object',
    description: `${r.kind}: fields are checked by the server (fieldValidation), not by this schema.`,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    },
    'x-kubernetes-preserve-unknown-fields': true,
    'x-kubernetes-group-version-kind': [{ group: r.group, version: r.version, kind: r.kind }],
  };
}

function queryParameter(name: string): object {
  return {
    name,
    in: 'query',
    schema: { type: name === 'limit' || name === 'timeoutSeconds' ? 'integer' : 'string' },
  };
}

function pathParameter(name: string): object {
  return { name, in: 'path', required: true, schema: { type: 'string' } };
}
