/**
 * The one proxy rule of the process (runtime/proxy/settings.ts): proxy URLs, which variable wins, NO_PROXY, and the
 * beacon's explicit --beacon-proxy. Pure functions; the behaviour through a real proxy is in the other files here.
 */
import { describe, expect, it } from 'vitest';
import {
  beaconProxySetting,
  NoProxyList,
  parseProxyUrl,
  proxySettingFromEnvironment,
  routeFor,
} from '../../runtime/proxy/index.js';
import { readRelayClientFlags } from '../../runtime/tunnel/index.js';

const beacon = { secure: true, host: 'beacon.example.com', port: 443 };

describe('parseProxyUrl', () => {
  it.each([
    ['http://proxy.corp:3128', 'http://proxy.corp:3128', 'http:', 3128],
    ['proxy.corp:3128', 'http://proxy.corp:3128', 'http:', 3128],
    ['http://proxy.corp', 'http://proxy.corp:80', 'http:', 80],
    ['https://proxy.corp', 'https://proxy.corp:443', 'https:', 443],
    ['HTTP://Proxy.Corp:8080/', 'http://proxy.corp:8080', 'http:', 8080],
    ['http://[2001:db8::1]:3128', 'http://[2001:db8::1]:3128', 'http:', 3128],
  ])('reads %s as %s', (input, display, protocol, port) => {
    const proxy = parseProxyUrl(input, 'HTTPS_PROXY');
    expect(proxy.display).toBe(display);
    expect(proxy.protocol).toBe(protocol);
    expect(proxy.port).toBe(port);
    expect(proxy.hasCredentials).toBe(false);
    expect(proxy.authorization()).toBeUndefined();
  });

  it('turns URL credentials into a Basic header, percent-decoded, and never shows them', () => {
    const proxy = parseProxyUrl('http://al%40ice:p%3Ass%20w@proxy.corp:3128', '--beacon-proxy');
    expect(proxy.authorization()).toBe(`Basic ${Buffer.from('al@ice:p:ss w').toString('base64')}`);
    expect(proxy.hasCredentials).toBe(true);
    for (const shown of [proxy.display, String(proxy), JSON.stringify({ proxy }), proxy.describe()]) {
      expect(shown).not.toMatch(/al|p%3A|ss/);
      expect(shown).toContain('proxy.corp:3128');
    }
    expect(proxy.describe()).toBe('http://proxy.corp:3128 (--beacon-proxy)');
  });

  it('sends a user name without a password as user: (as curl does)', () => {
    expect(parseProxyUrl('http://bob@proxy:3128', 'x').authorization()).toBe(
      `Basic ${Buffer.from('bob:').toString('base64')}`,
    );
  });

  it.each([
    ['', 'it is empty'],
    ['socks5://proxy:1080', 'SOCKS proxies are not supported'],
    ['ftp://proxy:21', "scheme 'ftp'"],
    ['http://proxy:3128/path', 'no path'],
    ['http://proxy:3128?x=1', 'no query'],
    ['http://proxy:99999', 'does not parse'],
    ['http://:3128', 'does not parse'],
  ])('refuses %j with CT_INVALID_ARGUMENT naming the source (%s)', (input, why) => {
    expect(() => parseProxyUrl(input, 'HTTPS_PROXY')).toThrow(
      expect.objectContaining({ code: 'CT_INVALID_ARGUMENT', message: expect.stringContaining(why) }),
    );
    expect(() => parseProxyUrl(input, 'HTTPS_PROXY')).toThrow(/^HTTPS_PROXY /);
  });

  it('quotes a malformed URL in its error without the credentials', () => {
    let message = '';
    try {
      parseProxyUrl('http://alice:s3cret@proxy:3128/oops', 'https_proxy');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('***@proxy:3128/oops');
    expect(message).not.toMatch(/alice|s3cret/);
  });
});

describe('proxySettingFromEnvironment and routeFor', () => {
  const route = (env: NodeJS.ProcessEnv, destination = beacon) =>
    routeFor(proxySettingFromEnvironment(env), destination);

  it('takes HTTPS_PROXY for TLS destinations and HTTP_PROXY for http:// ones', () => {
    const env = { HTTPS_PROXY: 'http://secure:1', HTTP_PROXY: 'http://plain:2' };
    expect(route(env).proxy?.display).toBe('http://secure:1');
    expect(route(env, { secure: false, host: 'openbao', port: 8200 }).proxy?.display).toBe('http://plain:2');
  });

  it('lets the lower-case variable win over the upper-case one, and treats an empty one as unset', () => {
    expect(route({ https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' }).proxy?.describe()).toBe(
      'http://lower:1 (https_proxy)',
    );
    expect(route({ https_proxy: '  ', HTTPS_PROXY: 'http://upper:2' }).proxy?.describe()).toBe(
      'http://upper:2 (HTTPS_PROXY)',
    );
    expect(
      route({ no_proxy: 'beacon.example.com', NO_PROXY: 'other', HTTPS_PROXY: 'http://p:1' }).proxy,
    ).toBe(undefined);
  });

  it('does not fall back from HTTPS_PROXY to HTTP_PROXY, and says so in the route', () => {
    const decided = route({ HTTP_PROXY: 'http://plain:2' });
    expect(decided.proxy).toBeUndefined();
    expect(decided.reason).toMatch(/HTTP_PROXY is set but applies to http:\/\/ destinations only/);
  });

  it('goes direct without any variable', () => {
    expect(route({})).toEqual({ reason: 'no proxy variable is set' });
  });

  it('names the variable of a malformed proxy URL', () => {
    expect(() => proxySettingFromEnvironment({ https_proxy: 'socks5://x:1' })).toThrow(/^https_proxy /);
  });
});

describe('NoProxyList', () => {
  const list = new NoProxyList(
    '.corp.example, *.svc  cluster.local,beacon.example.com:8443,10.1.2.3 [fd00::5]:443 192.168.0.0/16,fd12::/16',
  );
  it.each([
    ['corp.example', 443, true],
    ['a.b.corp.example', 443, true],
    ['mycorp.example', 443, false],
    ['x.svc', 8200, true],
    ['svc', 1, true],
    ['kubernetes.default.svc.cluster.local', 443, true],
    ['beacon.example.com', 8443, true],
    ['beacon.example.com', 443, false],
    ['10.1.2.3', 443, true],
    ['10.1.2.4', 443, false],
    ['fd00::5', 443, true],
    ['fd00::5', 80, false],
    ['192.168.7.9', 443, true],
    ['192.169.0.1', 443, false],
    ['fd12:3456::1', 443, true],
    ['[fd12::9]', 443, true],
    ['fe80::1', 443, false],
    ['CORP.EXAMPLE.', 443, true],
  ])('%s:%d bypasses the proxy: %s', (host, port, bypass) => {
    expect(list.match(host, port) !== undefined).toBe(bypass);
  });

  it('does not resolve names: an IP entry does not catch a name that might resolve to it', () => {
    expect(new NoProxyList('127.0.0.1').match('localhost', 443)).toBeUndefined();
  });

  it('bypasses everything with a lone *', () => {
    expect(new NoProxyList('*').match('anything.example', 1)).toBe('*');
    expect(new NoProxyList('').empty).toBe(true);
  });
});

describe('beaconProxySetting (--beacon-proxy)', () => {
  const env = { HTTPS_PROXY: 'http://env-proxy:3128', NO_PROXY: 'beacon.example.com' };

  it('uses an explicit URL always, NO_PROXY notwithstanding', () => {
    const decided = routeFor(beaconProxySetting('http://flag-proxy:8080', env), beacon);
    expect(decided.proxy?.describe()).toBe('http://flag-proxy:8080 (--beacon-proxy)');
  });

  it('goes direct with "none" even when HTTPS_PROXY is set', () => {
    const decided = routeFor(beaconProxySetting('none', { HTTPS_PROXY: 'http://env-proxy:3128' }), beacon);
    expect(decided).toEqual({ reason: '--beacon-proxy none' });
  });

  it('follows the environment when the flag is absent, NO_PROXY included', () => {
    expect(routeFor(beaconProxySetting(undefined, env), beacon)).toEqual({
      reason: 'NO_PROXY entry beacon.example.com',
    });
    expect(
      routeFor(beaconProxySetting(undefined, env), { ...beacon, host: 'other.example' }).proxy?.display,
    ).toBe('http://env-proxy:3128');
  });

  it('refuses a malformed flag at start, naming the flag', () => {
    expect(() => beaconProxySetting('http://proxy:3128/x')).toThrow(/^--beacon-proxy /);
  });
});

describe('bridge run / broker run flags', () => {
  const flags = {
    beacon: ['beacon.example.com:443'],
    stepTimeout: '1s',
    backoffMax: '1s',
    shutdownDelay: '0s',
  };

  it('stop at start on a malformed --beacon-proxy, naming the flag', async () => {
    await expect(
      readRelayClientFlags({ ...flags, beaconProxy: 'socks5://proxy:1080' }, 'broker run'),
    ).rejects.toThrow(/^--beacon-proxy .*SOCKS proxies are not supported/);
  });

  it('read --beacon-proxy none as a direct route', async () => {
    const relay = await readRelayClientFlags({ ...flags, beaconProxy: 'none' }, 'bridge run');
    expect(routeFor(relay.beaconProxy, beacon)).toEqual({ reason: '--beacon-proxy none' });
  });
});
