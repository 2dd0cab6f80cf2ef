import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Router from '@koa/router';
import Koa from 'koa';
import { KilnError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import { ironicErrors } from './ironic-errors.ts';

let server: ReturnType<Koa['listen']>;
let base = '';

before(async () => {
  const app = new Koa();
  app.silent = true;
  const r = new Router();
  r.use(ironicErrors(silentLogger()));
  r.get('/v1/lookup', () => {
    throw new KilnError('NOT_FOUND', 'Resource could not be found.');
  });
  r.get('/locked', () => {
    throw new KilnError('NODE_LOCKED', 'Node n1 is locked by host c1, please retry.');
  });
  r.get('/version', () => {
    throw new KilnError('VERSION_UNSUPPORTED', 'Invalid value for X-OpenStack-Ironic-API-Version header');
  });
  r.get('/big', () => {
    throw new KilnError('VALIDATION_FAILED', 'Request body too large', { status: 413 });
  });
  r.get('/boom', () => {
    throw new Error('secret internals');
  });
  app.use(r.routes());
  server = app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

async function get(path: string): Promise<{ status: number; fault: unknown }> {
  const res = await fetch(base + path);
  const body = (await res.json()) as { error_message: string };
  assert.deepEqual(Object.keys(body), ['error_message']);
  return { status: res.status, fault: JSON.parse(body.error_message) };
}

describe('ironicErrors: the Ironic-shaped ramdisk wire', () => {
  test('a KilnError answers its status and Ironic’s error_message with the message as faultstring', async () => {
    assert.deepEqual(await get('/v1/lookup'), {
      status: 404,
      fault: { faultcode: 'Client', faultstring: 'Resource could not be found.', debuginfo: null },
    });
    assert.deepEqual(await get('/locked'), {
      status: 409,
      fault: {
        faultcode: 'Client',
        faultstring: 'Node n1 is locked by host c1, please retry.',
        debuginfo: null,
      },
    });
    assert.equal((await get('/version')).status, 406);
    assert.equal((await get('/big')).status, 413);
  });
  test('an unexpected error answers 500 with Ironic’s bare fault and no internals', async () => {
    assert.deepEqual(await get('/boom'), {
      status: 500,
      fault: { faultcode: 'Server', faultstring: 'Internal error', debuginfo: null },
    });
  });
});
