import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Router from '@koa/router';
import Koa from 'koa';
import { KilnError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import { bootErrors, SCRIPT_RETRY_S } from './boot-errors.ts';

let server: ReturnType<Koa['listen']>;
let base = '';
let fail: () => never = () => {
  throw new Error('unset');
};

before(async () => {
  const app = new Koa();
  app.silent = true;
  const r = new Router({ prefix: '/boot' });
  r.use(bootErrors(silentLogger()));
  r.get('/ipxe', () => fail());
  r.get('/files/:name', () => fail());
  app.use(r.routes());
  server = app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

async function get(path: string, thrown: unknown) {
  fail = () => {
    throw thrown;
  };
  const res = await fetch(base + path);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe('bootErrors: the boot text wire', () => {
  test('a request error on the script route is an iPXE script that echoes it and exits', async () => {
    const r = await get('/boot/ipxe?mac=x', new KilnError('VALIDATION_FAILED', 'the script URL needs ?mac='));
    assert.equal(r.status, 400);
    assert.match(r.type ?? '', /^text\/plain/);
    assert.equal(r.text, '#!ipxe\necho Kiln: the script URL needs ?mac=\nexit\n');
  });
  test('a server-side failure on the script route echoes, waits and fetches the script again', async () => {
    const r = await get('/boot/ipxe?mac=52:54:00:00:00:01', new Error('database is gone'));
    assert.equal(r.status, 500);
    const lines = r.text.trimEnd().split('\n');
    assert.equal(lines[0], '#!ipxe');
    assert.equal(lines[1], 'echo Kiln: internal error; see the conductor log for details');
    assert.ok(lines.includes(`sleep ${SCRIPT_RETRY_S}`));
    assert.equal(lines.at(-1), `chain --replace --autofree ${base}/boot/ipxe?mac=52:54:00:00:00:01`);
    assert.ok(!r.text.includes('database'));
  });
  test('an echoed message cannot inject iPXE commands or expand settings', async () => {
    const setting = ['$', '{net0/mac}'].join('');
    const r = await get('/boot/ipxe', new KilnError('VALIDATION_FAILED', `bad ${setting}\nshell`));
    assert.equal(r.text, '#!ipxe\necho Kiln: bad $ {net0/mac} shell\nexit\n');
  });
  test('a file route answers the message as plain text with the status of its code', async () => {
    const r = await get('/boot/files/kernel', new KilnError('NOT_FOUND', 'no ramdisk in /x'));
    assert.equal(r.status, 404);
    assert.match(r.type ?? '', /^text\/plain/);
    assert.equal(r.text, 'no ramdisk in /x\n');
  });
});
