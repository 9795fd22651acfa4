import { describe, expect, it } from 'vitest';
import { CloudtaserError } from './errors.js';
import {
  BEACON_ADDRESS_RULE,
  DNS_LABEL_RULE,
  FINGERPRINT_RULE,
  ISSUER_RULE,
  KUBERNETES_NAME_RULE,
  parseFingerprint,
  parseNamespacedName,
  parseServiceAccountRef,
  requireRule,
  ruleViolation,
  SERVICE_ACCOUNT_RULE,
} from './rules.js';

const FINGERPRINT = '0ad50c05-1153-4508-9237-4cb2912e2c23';

describe('input rules', () => {
  it('names the input, states the rule, quotes the value and adds the hint', () => {
    const violation = ruleViolation(FINGERPRINT_RULE, 'fingerprint', 'kube-system', 'read it with kubectl');
    expect(violation).toBeInstanceOf(CloudtaserError);
    expect(violation?.code).toBe('CT_INVALID_FINGERPRINT');
    expect(violation?.message).toBe(
      `fingerprint must be a lower-case UUID (the UID of the cluster's kube-system namespace); got "kube-system"; read it with kubectl`,
    );
    expect(ruleViolation(FINGERPRINT_RULE, 'fingerprint', FINGERPRINT)).toBeUndefined();
  });

  it('refuses a value that is not a string, and cuts a long value to 80 characters', () => {
    expect(ruleViolation(ISSUER_RULE, 'issuer', undefined)?.message).toMatch(/; got undefined$/);
    const long = ruleViolation(DNS_LABEL_RULE, 'namespace', 'a'.repeat(200))!.message;
    expect(long).toMatch(new RegExp(`; got "${'a'.repeat(77)}\\.\\.\\."$`));
  });

  it('keeps the strict fingerprint for attributes and props, and normalises it for the runtime', () => {
    expect(FINGERPRINT_RULE.test(FINGERPRINT.toUpperCase())).toBe(false);
    expect(parseFingerprint(` ${FINGERPRINT.toUpperCase()} `)).toBe(FINGERPRINT);
    expect(() => parseFingerprint('prod')).toThrowError(
      expect.objectContaining({ code: 'CT_INVALID_FINGERPRINT' }),
    );
  });

  it('accepts Kubernetes names by their DNS-1123 rules and lengths', () => {
    expect(DNS_LABEL_RULE.test('cloudtaser-system')).toBe(true);
    expect(DNS_LABEL_RULE.test('a'.repeat(64))).toBe(false);
    expect(DNS_LABEL_RULE.test('a.b')).toBe(false);
    expect(KUBERNETES_NAME_RULE.test('ca.example-1')).toBe(true);
    expect(KUBERNETES_NAME_RULE.test('a..b')).toBe(false);
    expect(KUBERNETES_NAME_RULE.test('a'.repeat(254))).toBe(false);
  });

  it('parses <namespace>/<name> of a service account, refusing every other shape with the input named', () => {
    expect(parseServiceAccountRef('--service-account', 'ops/operator')).toEqual({
      namespace: 'ops',
      name: 'operator',
    });
    for (const junk of ['', 'operator', '/x', 'ns/', 'NS/x', 'a/b/c', 'ns/x y', `ns/${'a'.repeat(300)}`]) {
      expect(parseNamespacedName(junk)).toBeUndefined();
      expect(() => parseServiceAccountRef('attestation_service_account', junk)).toThrowError(
        /^attestation_service_account must be <namespace>\/<name> of the operator's service account/,
      );
    }
    expect(SERVICE_ACCOUNT_RULE.code).toBe('CT_INVALID_ARGUMENT');
  });

  it('takes an issuer of at most 1024 characters without spaces', () => {
    expect(requireRule(ISSUER_RULE, '--attestation-issuer', 'https://kubernetes.default.svc')).toBe(
      'https://kubernetes.default.svc',
    );
    for (const bad of ['', 'https://a b', `https://${'a'.repeat(1020)}`])
      expect(() => requireRule(ISSUER_RULE, '--attestation-issuer', bad)).toThrowError(
        /^--attestation-issuer must be the cluster's service-account issuer URL/,
      );
  });

  it('takes the beacon address as the charts do: host:port, [v6]:port or wss://', () => {
    for (const good of ['beacon.example.com:443', '[2001:db8::1]:8443', 'wss://b.example.com/relay'])
      expect(BEACON_ADDRESS_RULE.test(good)).toBe(true);
    for (const bad of ['beacon.example.com', 'https://b.example.com:443', 'b.example.com:65536'])
      expect(ruleViolation(BEACON_ADDRESS_RULE, 'beacon.address', bad)?.message).toMatch(
        /^beacon\.address must be the beacon's host:port/,
      );
  });
});
