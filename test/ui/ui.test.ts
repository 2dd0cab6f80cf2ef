// The web console in real headless Chromium against a real conductor: sign in, list, filter,
// search by MAC, open a node, deploy with the confirmation and watch the progress bar move as the
// "ramdisk" heartbeats, power off after a confirmation, and a reader's action refused with the
// API's message, nothing changed. Screenshots go to docs/ when KILN_UI_SCREENSHOTS=1.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { createToken } from '../../conductor/auth/tokens.ts';
import { waitFor } from '../support/wait.ts';
import { startUiWorld, type UiWorld } from './harness.ts';

let w: UiWorld;

/** An inventory in IPA's shape, as inspection stores it. */
function inventory(serial: string, bmc: string | null) {
  return {
    interfaces: [],
    cpu: { model_name: 'Xeon', frequency: null, count: 16, architecture: 'x86_64', flags: [] },
    disks: [],
    memory: { total: 68_719_476_736, physical_mb: 65_536 },
    bmc_address: bmc,
    system_vendor: {
      product_name: 'R1',
      serial_number: serial,
      manufacturer: 'Acme',
      firmware: { vendor: null, version: null, build_date: null },
    },
    boot: { current_boot_mode: 'uefi', pxe_interface: null },
    hostname: null,
  };
}
const nodes: Record<string, string> = {};

async function act(name: string, target: string) {
  const r = await w.c.call('PUT', `/v1/nodes/${name}/states/provision`, { target });
  assert.equal(r.status, 202, r.text);
}
async function stateIs(name: string, state: string) {
  return waitFor(`${name} to be ${state}`, async () => {
    const r = await w.c.call('GET', `/v1/nodes/${name}`);
    return r.body.provision_state === state ? r.body : undefined;
  });
}
async function node(name: string, mac: string, props: Record<string, unknown> = {}) {
  const r = await w.c.call('POST', '/v1/nodes', {
    name,
    bmc_address: `fake://${name}`,
    properties: props,
    ports: [mac],
  });
  assert.equal(r.status, 201, r.text);
  nodes[name] = r.body.uuid;
}
async function lookup(mac: string): Promise<string> {
  const r = await fetch(`${w.c.publicUrl}/v1/lookup?addresses=${mac}`, {
    headers: { 'X-OpenStack-Ironic-API-Version': '1.68' },
  });
  assert.equal(r.status, 200, await r.clone().text());
  return ((await r.json()) as { config: { agent_token: string } }).config.agent_token;
}
async function heartbeat(name: string, token: string, progress?: Record<string, unknown>) {
  const r = await fetch(`${w.c.publicUrl}/v1/heartbeat/${nodes[name]}`, {
    method: 'POST',
    headers: { 'X-OpenStack-Ironic-API-Version': '1.68', 'content-type': 'application/json' },
    body: JSON.stringify({
      callback_url: 'http://127.0.0.1:9911',
      agent_token: token,
      agent_version: '9.4.3',
      ...(progress ? { kiln_progress: progress } : {}),
    }),
  });
  assert.equal(r.status, 202, await r.text());
}

async function signIn(page: Page, token: string) {
  await page.goto(`${w.base}/ui/`);
  await page.getByLabel('API token').fill(token);
  await page.keyboard.press('Enter'); // keyboard only: Enter submits
}

const problems: string[] = [];
function watch(page: Page) {
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
}

before(async () => {
  w = await startUiWorld();
  await node('web-01', '52:54:00:aa:00:01');
  await node('web-02', '52:54:00:aa:00:02');
  await node('db-01', '52:54:00:bb:00:01');
  await node('broken-01', '52:54:00:cc:00:01', { test_fail_deploy: true });
  await node('stream-01', '52:54:00:dd:00:01', { deploy_interface: 'agent' });
  await w.c.store.nodes.update(nodes['db-01']!, {
    inventory: inventory('SN-DB-7731', null),
  });
  for (const n of ['web-01', 'web-02', 'db-01', 'broken-01', 'stream-01']) await act(n, 'manage');
  for (const n of ['web-01', 'web-02', 'broken-01']) {
    await stateIs(n, 'manageable');
    await act(n, 'provide');
  }
  await stateIs('stream-01', 'manageable');
  await act('stream-01', 'provide');
  await stateIs('stream-01', 'clean wait');
  await heartbeat('stream-01', await lookup('52:54:00:dd:00:01'));
  await stateIs('stream-01', 'available');
  await w.c.call('PUT', '/v1/nodes/db-01/maintenance', { reason: 'disk swap' });
  const img = await w.c.call('POST', '/v1/images', {
    name: 'debian-12',
    url: 'http://images.example/debian-12.raw',
    checksum: `sha256:${'a'.repeat(64)}`,
  });
  assert.equal(img.status, 201, img.text);
  await stateIs('broken-01', 'available');
  await w.c.call('PUT', '/v1/nodes/broken-01/states/provision', { target: 'deploy', image: 'debian-12' });
  await stateIs('broken-01', 'deploy failed');
});
after(() => w?.close());

describe('web console', () => {
  it('serves its files with strict headers and no inline script; the API still wants a token', async () => {
    const r = await fetch(`${w.base}/ui/`);
    assert.equal(r.status, 200);
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
    const html = await r.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from another origin');
    assert.equal((await fetch(`${w.base}/ui`, { redirect: 'manual' })).status, 308);
    for (const bad of ['/ui/..%2Fpackage.json', '/ui/.env', '/ui/nope.js'])
      assert.equal((await fetch(`${w.base}${bad}`)).status, 404, bad);
    assert.equal((await fetch(`${w.base}/v1/nodes`)).status, 401);
  });

  it('signs in (a wrong token gets the API message), lists, filters, searches by MAC and serial', async () => {
    const page = await w.browser.newPage();
    watch(page);
    await signIn(page, 'not-a-token');
    await page.getByText('the API token is not valid (unknown or revoked)').waitFor();
    await page.getByLabel('API token').fill(w.c.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Nodes' }).waitFor();
    await page.getByText('5 of 5 nodes').waitFor();
    assert.equal(await page.locator('.who').textContent(), 'admin');
    await page.getByLabel('Maintenance').selectOption('true');
    await page.getByText('1 of 5 nodes').waitFor();
    assert.deepEqual(await page.locator('tbody th a').allTextContents(), ['db-01']);
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await page.getByLabel('State').selectOption('deploy failed');
    assert.deepEqual(await page.locator('tbody th a').allTextContents(), ['broken-01']);
    assert.match((await page.locator('td.last-error').textContent()) ?? '', /fake deploy failure/);
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await page.getByLabel('Search').fill('52-54-00-AA-00-02'); // another spelling of web-02's MAC
    await page.getByText('1 of 5 nodes').waitFor();
    assert.deepEqual(await page.locator('tbody th a').allTextContents(), ['web-02']);
    await page.getByLabel('Search').fill('sn-db-77');
    await page.getByText('1 of 5 nodes').waitFor();
    assert.deepEqual(await page.locator('tbody th a').allTextContents(), ['db-01']);
    await page.getByRole('link', { name: 'db-01' }).click();
    await page.getByRole('heading', { name: 'db-01' }).waitFor();
    await page.getByText('SN-DB-7731').waitFor();
    await page.locator('table.ports').getByText('52:54:00:bb:00:01').waitFor();
    assert.match((await page.locator('.node-maintenance').textContent()) ?? '', /yes: disk swap/);
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('deploys with the confirmation dialog and the progress bar moves with the heartbeats', async () => {
    const page = await w.browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(page);
    await signIn(page, w.c.adminToken);
    await page.getByRole('link', { name: 'stream-01' }).click();
    await page.getByRole('button', { name: 'Deploy' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Image').selectOption('debian-12');
    await dialog.getByLabel('Hostname (optional)').fill('stream-01.lab');
    await dialog.getByRole('button', { name: 'Deploy' }).click();
    const n = await stateIs('stream-01', 'wait call-back');
    assert.equal(
      n.instance_info.hostname,
      'stream-01.lab',
      'the hostname typed in the dialog reached the API',
    );
    const token = await lookup('52:54:00:dd:00:01');
    const bar = page.getByRole('progressbar', { name: 'Progress of stream-01' });
    await heartbeat('stream-01', token, { phase: 'writing image', bytes_done: 25, bytes_total: 100 });
    await waitFor('25%', async () => (await bar.getAttribute('aria-valuenow')) === '25');
    await heartbeat('stream-01', token, { phase: 'writing image', bytes_done: 60, bytes_total: 100 });
    await waitFor('60%', async () => (await bar.getAttribute('aria-valuenow')) === '60');
    if (process.env.KILN_UI_SCREENSHOTS) await page.screenshot({ path: 'docs/ui-node.png', fullPage: true });
    await page.getByRole('link', { name: 'Nodes' }).first().click();
    await page.getByRole('progressbar', { name: 'Progress of stream-01' }).waitFor();
    await page.screenshot({
      path: process.env.KILN_UI_SCREENSHOTS ? 'docs/ui-nodes.png' : join(w.uiDir, 'list.png'),
    });
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('power off asks first: Escape cancels and nothing happens; confirming powers the node off', async () => {
    await w.c.call('PUT', '/v1/nodes/web-01/states/power', { target: 'power on' });
    const page = await w.browser.newPage();
    await signIn(page, w.c.adminToken);
    await page.getByRole('link', { name: 'web-01' }).click();
    await page.getByRole('button', { name: 'Power off' }).click();
    await page.getByRole('dialog').waitFor();
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    assert.equal((await w.c.call('GET', '/v1/nodes/web-01')).body.power_state, 'power on');
    await page.getByRole('button', { name: 'Power off' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Power off' }).click();
    await waitFor(
      'power off',
      async () => (await w.c.call('GET', '/v1/nodes/web-01')).body.power_state === 'power off',
    );
    await page.getByText('Power off: accepted').waitFor();
    await page.close();
  });

  it("a reader is told its role; its action is refused with the API's message and nothing changes", async () => {
    const { token } = await createToken(w.c.store.tokens, {
      name: 'ui-reader',
      role: 'reader',
      expiresAt: null,
    });
    await w.c.call('PUT', '/v1/nodes/web-02/states/power', { target: 'power on' });
    const page = await w.browser.newPage();
    await signIn(page, token);
    assert.equal(await page.locator('.who').textContent(), 'reader');
    await page.getByRole('link', { name: 'web-02' }).click();
    await page.getByText('the API refuses changes from it').waitFor();
    await page.getByRole('button', { name: 'Reboot' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reboot' }).click();
    const msg = page.locator('.error-message');
    await msg.waitFor();
    assert.equal(
      await msg.textContent(),
      `token ui-reader has role reader; PUT /v1/nodes/${nodes['web-02']}/states/power needs operator`,
    );
    const after = await w.c.call('GET', '/v1/nodes/web-02');
    assert.equal(after.body.power_state, 'power on');
    // A revoked token returns the page to sign-in with the API's message.
    await w.c.call('DELETE', '/v1/tokens/ui-reader');
    await page.getByText('the API token is not valid (unknown or revoked)').waitFor({ timeout: 10_000 });
    await page.getByLabel('API token').waitFor();
    await page.close();
  });

  it('a discovered machine is listed with its reported BMC; Approve BMC applies the enrollment credentials', async () => {
    const r = await w.c.call('POST', '/v1/nodes', {
      name: 'node-525400ee0001',
      ports: ['52:54:00:ee:00:01'],
    });
    assert.equal(r.status, 201, r.text);
    await w.c.store.nodes.update(r.body.uuid, { inventory: inventory('SN-NEW-1', '127.0.0.9') });
    const page = await w.browser.newPage();
    await signIn(page, w.c.adminToken);
    await page.getByRole('link', { name: '1 discovered machine awaits BMC approval' }).click();
    const card = page.locator(`li[data-node="${r.body.uuid}"]`);
    await card.getByText('SN-NEW-1').waitFor();
    assert.equal(await card.getByLabel('BMC address to approve').inputValue(), '127.0.0.9');
    await card.getByRole('button', { name: 'Approve BMC' }).click();
    const done = await stateIs('node-525400ee0001', 'manageable');
    assert.equal(done.bmc_address, 'ipmi://enroll-admin@127.0.0.9');
    assert.equal(done.bmc_password, '******');
    await page.getByText('No machine awaits approval.').waitFor();
    await page.close();
  });
});
