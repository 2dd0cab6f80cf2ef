// The browser tests' world: a real conductor with fake BMCs (fake workflow, one agent-workflow node
// whose "ramdisk" is the test itself), the console built from the current source, and headless
// Chromium (Debian's, through playwright-core). Until the conductor serves /ui itself, a front on
// loopback serves the console with uiRouter and passes every other path to the operator API, so
// the page and the API share one origin as they do in production.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import { type Browser, chromium } from 'playwright-core';
import { restErrors } from '../../conductor/api/rest-errors.ts';
import { uiRouter } from '../../conductor/api/routes/ui.ts';
import { createAgentWorkflow } from '../../conductor/provision/agent-workflow.ts';
import { createFakeWorkflow } from '../../conductor/provision/fake-workflow.ts';
// @ts-expect-error: a plain ESM build script without type declarations
import { buildUi } from '../../scripts/build-ui.mjs';
import { createLogger } from '../../shared/log.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';

export interface UiWorld {
  c: TestConductor;
  /** Where the browser opens the console: `${base}/ui/`. */
  base: string;
  browser: Browser;
  uiDir: string;
  close(): Promise<void>;
}

/** Serve /ui from `dir`, pass everything else to `api`. */
async function front(dir: string, api: string): Promise<Server> {
  const ui = new Koa();
  ui.use(restErrors(createLogger({ name: 'ui-front', level: 'silent' })));
  ui.use(uiRouter({ dir }).routes());
  const serveUi = ui.callback();
  const target = new URL(api);
  const server = createServer((req, res) => {
    if (req.url === '/ui' || req.url?.startsWith('/ui/')) return void serveUi(req, res);
    const up = httpRequest(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return server;
}

export async function startUiWorld(): Promise<UiWorld> {
  const uiDir = mkdtempSync(join(tmpdir(), 'kiln-ui-'));
  await buildUi(uiDir);
  const agent = createAgentWorkflow({
    // The test is the ramdisk: it looks up and heartbeats; no command of its is ever needed but
    // the clean-step list (empty), so anything else fails loudly.
    clientFor: () => ({
      getCleanSteps: async () => [],
      listCommands: async () => [],
      executeCleanStep: fail('execute_clean_step'),
      executeDeployStep: fail('execute_deploy_step'),
      getPartitionUuids: fail('get_partition_uuids'),
      installBootloader: fail('install_bootloader'),
      getHardwareInfo: fail('get_hardware_info'),
      powerOff: fail('power_off'),
    }),
    imageUrl: (image) => image.url,
    fastTrack: false,
  });
  const fake = createFakeWorkflow();
  const failing = createFakeWorkflow({ failIn: ['deploy'] });
  const c = await startTestConductor(
    {
      workflowFor: (n) =>
        n.properties.deploy_interface === 'agent' ? agent : n.properties.test_fail_deploy ? failing : fake,
    },
    {
      'conductor.fast_track': false,
      'enrollment.bmc_username': 'enroll-admin',
      'enrollment.bmc_password': 'enroll-pw',
    },
  );
  // The conductor serves the console itself once it is wired; until then, the front does.
  const probe = await fetch(`${c.url}/ui/`).catch(() => null);
  const own = probe?.status === 200;
  const server = own ? null : await front(uiDir, c.url);
  const base = own ? c.url : `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  return {
    c,
    base,
    browser,
    uiDir,
    close: async () => {
      await browser.close();
      if (server) await new Promise((ok) => server.close(ok));
      await c.close();
      rmSync(uiDir, { recursive: true, force: true });
    },
  };
}

function fail(what: string) {
  return async (): Promise<never> => {
    throw new Error(`the test ramdisk does not do ${what}`);
  };
}
