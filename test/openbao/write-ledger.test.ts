/**
 * The OpenBao client's read-your-writes ledger (runtime/openbao/consistency.ts) across a namespace's life: what this
 * process wrote in a namespace stops being waited for once that namespace is deleted, or created anew (by this
 * process after another one deleted it). Before, a register right after `deregister --purge` in one process (a
 * Terraform replace) waited for the purged namespace's mounts in the new one and failed with CT_OPENBAO_READ_LAG.
 */
import { describe, expect, it } from 'vitest';
import { WriteLedger } from '../../runtime/openbao/consistency.js';

function ledgerWithWritesIn(...namespaces: string[]): WriteLedger {
  const ledger = new WriteLedger(60_000);
  for (const namespace of namespaces) {
    ledger.mounted(namespace, 'secret', 'cloudtaser/');
    ledger.mounted(namespace, 'auth', 'kubernetes/');
    ledger.kv(namespace, 'cloudtaser', 'system/bridge-ca', { kind: 'at-least', version: 1 });
  }
  return ledger;
}

const remembered = (ledger: WriteLedger, namespace: string) => ({
  secret: ledger.expectedMounts(namespace, 'secret')?.paths,
  auth: ledger.expectedMounts(namespace, 'auth')?.paths,
  kv: ledger.kvExpectation(namespace, 'cloudtaser', 'system/bridge-ca')?.value,
});
const nothing = { secret: undefined, auth: undefined, kv: undefined };

describe('the write ledger across a namespace life', () => {
  it('forgets the writes in a deleted namespace and below it, and only there', () => {
    const ledger = ledgerWithWritesIn('ct/aaaa', 'ct/aaaa/child', 'ct/aaaab', 'ct');
    ledger.namespaceDeleted('ct/aaaa');
    expect(remembered(ledger, 'ct/aaaa')).toEqual(nothing);
    expect(remembered(ledger, 'ct/aaaa/child')).toEqual(nothing);
    // A sibling whose name merely starts the same, and the parent, keep theirs.
    expect(remembered(ledger, 'ct/aaaab').secret).toEqual(['cloudtaser/']);
    expect(remembered(ledger, 'ct').kv).toEqual({ kind: 'at-least', version: 1 });
  });

  it('forgets what it wrote in a namespace of the same name once it creates the namespace anew', () => {
    const ledger = ledgerWithWritesIn('ct/aaaa');
    // Deleted by another process (not seen here), then created by this one: new and empty.
    ledger.namespaceCreated('ct/aaaa');
    expect(remembered(ledger, 'ct/aaaa')).toEqual(nothing);
    expect(ledger.createdNamespaceDeadline('ct/aaaa')).toBeGreaterThan(Date.now());
  });
});
