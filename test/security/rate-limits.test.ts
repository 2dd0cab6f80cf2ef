// Kiln issue item 9, HTTP: the provisioning endpoints are on a network anyone can reach. A flood
// of lookups from one source gets 429 with Retry-After once its burst is spent, while another
// source is still served; lookups naming one MAC are limited for that MAC from every source; a
// refused request does nothing (it never reaches the lookup). Against a real conductor, calling
// its provisioning listener from different loopback source addresses.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { IRONIC_API } from '../../shared/wire/ipa.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';

const BURST = 5;
const randomMac = () => [0x02, ...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0')).join(':');

describe('provisioning rate limits', () => {
  let c: TestConductor;
  /**
   * A lookup whose connection comes from `source` (every 127.x address is loopback on Linux).
   * node:http, because undici's client ignores a local address.
   */
  const lookup = (source: string, mac: string) =>
    new Promise<{ status: number; retryAfter: string | undefined; text: string }>((resolve, reject) => {
      const req = get(
        `${c.publicUrl}/v1/lookup?addresses=${mac}`,
        {
          localAddress: source,
          agent: false,
          headers: { 'x-openstack-ironic-api-version': IRONIC_API.ramdiskEndpoints },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], text }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
    });
  const lookupsLogged = () => c.logs.filter((l) => l.includes('/v1/lookup') && !l.includes('"status":429'));

  before(async () => {
    // A slow refill, so the test's own pace can't put tokens back in between.
    c = await startTestConductor(
      {},
      {
        'provisioning.rate_limit.per_source_per_s': 0.01,
        'provisioning.rate_limit.burst': BURST,
      },
    );
  });
  after(async () => {
    await c.close();
  });

  it('answers 429 with Retry-After to one source after its burst; another source is still served', async () => {
    const first = await lookup('127.0.0.11', randomMac());
    assert.notEqual(first.status, 429);
    for (let i = 1; i < BURST; i++)
      assert.equal((await lookup('127.0.0.11', randomMac())).status, first.status);
    const refused = await lookup('127.0.0.11', randomMac());
    assert.equal(refused.status, 429, refused.text);
    assert.ok(Number(refused.retryAfter) >= 1, `Retry-After: ${refused.retryAfter}`);
    const body = JSON.parse(refused.text) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'RATE_LIMITED');
    assert.match(body.error.message, /source address 127\.0\.0\.11/);
    assert.match(body.error.message, /retry after \d+ s/);
    // Twenty more are all refused, and none of them reached the lookup.
    const handledBefore = lookupsLogged().length;
    assert.ok(handledBefore >= BURST, `the served lookups are in the log: ${handledBefore}`);
    for (let i = 0; i < 20; i++) assert.equal((await lookup('127.0.0.11', randomMac())).status, 429);
    assert.equal(lookupsLogged().length, handledBefore, 'refused lookups were not handled');
    // Another machine on the network is served as before.
    const other = await lookup('127.0.0.12', randomMac());
    assert.equal(other.status, first.status, other.text);
  });

  it('limits lookups naming one MAC from every source, and leaves other MACs alone', async () => {
    const victim = randomMac();
    // BURST lookups for one MAC, each from a fresh source (so no source bucket is spent).
    for (let i = 0; i < BURST; i++) assert.notEqual((await lookup(`127.0.1.${i + 1}`, victim)).status, 429);
    const refused = await lookup('127.0.1.100', victim);
    assert.equal(refused.status, 429, refused.text);
    assert.match(JSON.parse(refused.text).error.message, new RegExp(`MAC ${victim}`));
    // The same fresh source asking for another MAC is served.
    assert.notEqual((await lookup('127.0.1.101', randomMac())).status, 429);
  });
});
