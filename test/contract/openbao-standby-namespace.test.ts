/**
 * The OpenBao test server's lagging standby must not show a namespace without its built-in mounts. OpenBao creates
 * a namespace and its `sys/`, `cubbyhole/`, `identity/` and `token/` mounts in the one namespace create, so a
 * standby sees all of them or none. The test server stamped each built-in mount with its own creation time, a
 * millisecond or two after the namespace's: a read landing in that gap found the namespace but answered
 * `no handler for route "sys/mounts"` (a flaky `register` through a lagging standby in CI).
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../../runtime/dev/openbao/backend.js';
import { installBuiltinMounts } from '../../runtime/dev/openbao/mounts.js';
import { isVisible, Namespace } from '../../runtime/dev/openbao/namespaces.js';
import { TokenStore } from '../../runtime/dev/openbao/tokens.js';

describe('the OpenBao test server: a new namespace and its built-in mounts', () => {
  it('are visible together to a lagging standby, whatever the clock did in between', () => {
    const root = new Namespace('', undefined);
    const child = new Namespace('team', root);
    // The clock moves on while the mounts are made (as it does on a loaded machine).
    const later = child.createdMs + 5;
    const realNow = Date.now;
    Date.now = () => later;
    try {
      const systemBackend: Backend = {
        handle: () => Promise.reject(new Error('not used')),
      } as unknown as Backend;
      installBuiltinMounts(
        child,
        { tokens: new TokenStore(), logger: pino({ level: 'silent' }), systemBackend },
        false,
      );
    } finally {
      Date.now = realNow;
    }
    // A standby read as of the namespace's creation sees the namespace, so it must see every built-in mount.
    const asOf = child.createdMs;
    expect(isVisible(child.createdMs, asOf)).toBe(true);
    const hidden = [...child.mounts.values(), ...child.authMounts.values()]
      .filter((mount) => !isVisible(mount.createdMs, asOf))
      .map((mount) => mount.path);
    expect(hidden).toEqual([]);
    expect([...child.mounts.keys()].sort()).toEqual(['cubbyhole/', 'identity/', 'sys/']);
  });
});
