/**
 * An address that is not OpenBao: any web server, or a proxy's catch-all page, answers 404 to everything. The
 * client took such a 404 as OpenBao's "not there", so a Terraform refresh against a wrong `secretstore_address`
 * dropped the registration and the beacon client CA from state without an error, and a plan created them again.
 * Only OpenBao's JSON 404 means "not there" now; anything else is CT_OPENBAO_BAD_RESPONSE.
 */
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus, loadBeaconClientCa } from '../../runtime/registration/index.js';
import { listenOnLoopback } from '../support/loopback.js';

/** 404 for every request, with the body each test names. */
let body = '';
let contentType = 'text/html';
let stand: Awaited<ReturnType<typeof listenOnLoopback>>;

beforeAll(async () => {
  stand = await listenOnLoopback(
    createServer((req, res) => {
      req.resume();
      res.writeHead(404, { 'content-type': contentType });
      res.end(body);
    }),
  );
});
afterAll(async () => {
  await stand?.close();
});

describe('a 404 from something that is not OpenBao', () => {
  it.each([
    ['an HTML page', 'text/html', '<html><body><h1>Error response</h1><p>Error code: 404</p></body></html>'],
    ['an empty body', 'text/plain', ''],
    ['JSON that is not an OpenBao error', 'application/json', '{"message":"Not Found"}'],
  ])('is not "not registered": %s', async (_what, type, text) => {
    [contentType, body] = [type, text];
    const client = new OpenBaoClient({ address: stand.address, token: 't', retries: 0 });
    try {
      const fingerprint = '0ad50c05-1153-4508-9237-4cb2912e2c23';
      await expect(getClusterStatus(client, { fingerprint })).rejects.toMatchObject({
        code: 'CT_OPENBAO_BAD_RESPONSE',
        message: expect.stringContaining('check the address points at OpenBao'),
      });
      await expect(loadBeaconClientCa(client.withNamespace('cloudtaser'))).rejects.toMatchObject({
        code: 'CT_OPENBAO_BAD_RESPONSE',
      });
    } finally {
      await client.close();
    }
  });
});
