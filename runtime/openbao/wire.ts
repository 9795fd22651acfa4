/**
 * OpenBao's answers as they arrive on the wire (snake_case, fields optional) and their conversion into the
 * shapes the API returns (types.ts). A missing field becomes an explicit default here, so the rest of the client
 * never reads a raw answer.
 */
import { CloudtaserError } from '../core/index.js';
import type { AuthResult, NamespaceInfo } from './types.js';

export interface RawNamespace {
  id?: string;
  path?: string;
  uuid?: string;
  tainted?: boolean;
  locked?: boolean;
  custom_metadata?: Record<string, string> | null;
}

export interface RawKvRead {
  data: Record<string, unknown> | null;
  metadata?: { version?: number; created_time?: string; custom_metadata?: Record<string, string> | null };
}

export interface RawKvMetadata {
  current_version?: number;
  oldest_version?: number;
  created_time?: string;
  updated_time?: string;
  max_versions?: number;
  cas_required?: boolean;
  custom_metadata?: Record<string, string> | null;
  versions?: Record<string, { created_time: string; deletion_time: string; destroyed: boolean }>;
}

export interface RawAuth {
  client_token?: string;
  accessor?: string;
  policies?: string[];
  lease_duration?: number;
  renewable?: boolean;
  metadata?: Record<string, string> | null;
}

export function toNamespaceInfo(raw: RawNamespace | undefined): NamespaceInfo {
  return {
    id: String(raw?.id ?? ''),
    path: String(raw?.path ?? '').replace(/\/$/, ''),
    uuid: raw?.uuid,
    tainted: raw?.tainted === true,
    locked: raw?.locked === true,
    customMetadata: raw?.custom_metadata ?? {},
  };
}

export function toAuthResult(
  raw: RawAuth | undefined,
  path: string,
  client: { readonly address: string; readonly namespace?: string },
): AuthResult {
  if (!raw?.client_token) {
    throw new CloudtaserError('CT_OPENBAO_BAD_RESPONSE', `OpenBao's answer to ${path} has no auth block`, {
      details: { path, address: client.address, namespace: client.namespace },
    });
  }
  return {
    clientToken: raw.client_token,
    accessor: String(raw.accessor ?? ''),
    policies: raw.policies ?? [],
    leaseDuration: Number(raw.lease_duration ?? 0),
    renewable: raw.renewable === true,
    metadata: raw.metadata ?? null,
  };
}
