import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Router from '@koa/router';
import Koa from 'koa';
import { ERROR_TABLE, KilnError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import { restErrors } from './rest-errors.ts';

let server: ReturnType<Koa['listen']>;
let base = '';

before(async () => {
  const app = new Koa();
  app.silent = true;
  app.use(restErrors(silentLogger()));
  const r = new Router();
  r.get('/locked', () => {
    throw new KilnError('NODE_LOCKED', 'node n1 is locked by c1');
  });
  r.get('/bmc', () => {
    throw new KilnError('BMC_ERROR', 'BMC said no', { details: { bmc: 'ipmi://x' } });
  });
  r.get('/big', () => {
    throw new KilnError('VALIDATION_FAILED', 'too big', { status: 413 });
  });
  r.get('/boom', () => {
    throw new Error('secret internals');
  });
  app.use(r.routes());
  app.use(r.allowedMethods({ throw: true }));
  server = app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

async function get(path: string, method = 'GET'): Promise<{ status: number; body: unknown }> {
  const res = await fetch(base + path, { method });
  return { status: res.status, body: await res.json() };
}

describe('restErrors: the REST wire', () => {
  test('a KilnError answers its ERROR_TABLE status and Kiln’s body', async () => {
    assert.deepEqual(await get('/locked'), {
      status: ERROR_TABLE.NODE_LOCKED.status,
      body: { error: { code: 'NODE_LOCKED', message: 'node n1 is locked by c1', details: null } },
    });
    assert.deepEqual(await get('/bmc'), {
      status: 502,
      body: { error: { code: 'BMC_ERROR', message: 'BMC said no', details: { bmc: 'ipmi://x' } } },
    });
  });
  test('a status the error carries wins over the table', async () => {
    assert.equal((await get('/big')).status, 413);
  });
  test('an unexpected error answers 500 INTERNAL without internals', async () => {
    const r = await get('/boom');
    assert.equal(r.status, 500);
    assert.equal((r.body as { error: { code: string } }).error.code, 'INTERNAL');
    assert.ok(!JSON.stringify(r.body).includes('secret'));
  });
  test('no route: 404 NOT_FOUND; wrong method: 405', async () => {
    const r = await get('/nowhere');
    assert.equal(r.status, 404);
    assert.equal((r.body as { error: { code: string } }).error.code, 'NOT_FOUND');
    assert.equal((await get('/locked', 'DELETE')).status, 405);
  });
});
