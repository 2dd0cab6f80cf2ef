// The CLI's API client on its own: where it points, which exit code each API answer becomes,
// and that it refuses to drive an API that is not Kiln's.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ApiClient, CliError, EXIT, exitCodeFor, exitCodeForStatus, resolveApiUrl } from './client.ts';

/** A server that answers every request from `answer` and remembers the paths it was asked for. */
async function serve(answer: (path: string) => { status: number; body: unknown }) {
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    paths.push(req.url ?? '');
    const { status, body } = answer(req.url ?? '');
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, paths, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('resolveApiUrl', () => {
  const noConfig = { XDG_CONFIG_HOME: '/nonexistent' };

  it('strips trailing slashes and a trailing /v1, whichever source gives the URL', () => {
    for (const given of [
      'http://host:6385',
      'http://host:6385/',
      'http://host:6385/v1',
      'http://host:6385/v1/',
      'http://host:6385//v1//',
    ]) {
      assert.equal(resolveApiUrl(given, noConfig), 'http://host:6385', `--api ${given}`);
      assert.equal(resolveApiUrl(undefined, { ...noConfig, KILN_API: given }), 'http://host:6385', given);
    }
  });

  it('keeps a path prefix in front of /v1 (an API behind a reverse proxy)', () => {
    assert.equal(resolveApiUrl('https://proxy.example/kiln/v1/', noConfig), 'https://proxy.example/kiln');
  });

  it('defaults to the local conductor', () => {
    assert.equal(resolveApiUrl(undefined, noConfig), 'https://127.0.0.1:6385');
  });
});

describe('exit codes for API answers', () => {
  it('maps validation to usage, 404 to not found, 409 to conflict, the rest to failed', () => {
    assert.equal(exitCodeForStatus(400), EXIT.usage);
    assert.equal(exitCodeForStatus(413), EXIT.usage);
    assert.equal(exitCodeForStatus(415), EXIT.usage);
    assert.equal(exitCodeForStatus(404), EXIT.notFound);
    assert.equal(exitCodeForStatus(409), EXIT.conflict);
    assert.equal(exitCodeForStatus(500), EXIT.error);
    assert.equal(exitCodeForStatus(502), EXIT.error);
    // A Kiln error code decides over the status: a 405 is still "not found" for a script.
    const body = (code: string) => ({ error: { code, message: 'm', details: null } });
    assert.equal(exitCodeFor(405, body('NOT_FOUND')), EXIT.notFound);
    assert.equal(exitCodeFor(409, body('IN_MAINTENANCE')), EXIT.conflict);
    assert.equal(exitCodeFor(400, body('BMC_UNSUPPORTED')), EXIT.usage);
    assert.equal(exitCodeFor(502, body('IMAGE_ORIGIN_FAILED')), EXIT.error);
    assert.equal(
      exitCodeFor(404, body('SOMETHING_NEW')),
      EXIT.notFound,
      'unknown codes fall back to the status',
    );
    assert.equal(exitCodeFor(413, 'plain text'), EXIT.usage);
  });
});

describe('ApiClient', () => {
  let ironic: Awaited<ReturnType<typeof serve>>;
  let kiln: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    // What a stock OpenStack Ironic API answers on its default port, 6385.
    ironic = await serve((path) =>
      path === '/'
        ? {
            status: 200,
            body: {
              name: 'OpenStack Ironic API',
              description: 'Ironic is an OpenStack project which enables the provision and management…',
              default_version: { id: 'v1', status: 'CURRENT', version: '1.96', min_version: '1.1' },
              versions: [{ id: 'v1', status: 'CURRENT', version: '1.96', min_version: '1.1' }],
            },
          }
        : { status: 200, body: { nodes: [] } },
    );
    kiln = await serve((path) =>
      path === '/'
        ? { status: 200, body: { name: 'Kiln', kiln: { version: '0.1.0', extensions: [] } } }
        : path === '/v1/images'
          ? {
              status: 400,
              body: { error: { code: 'VALIDATION_FAILED', message: 'invalid image: checksum' } },
            }
          : { status: 200, body: { nodes: [] } },
    );
  });
  after(async () => {
    await ironic.close();
    await kiln.close();
  });

  it('refuses an API whose GET / has no kiln member, before sending anything else', async () => {
    const client = new ApiClient(ironic.url, {}, 'test');
    await assert.rejects(client.call('GET', '/v1/nodes'), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exitCode, EXIT.unreachable);
      assert.match(
        e.message,
        new RegExp(
          `^this is not a Kiln API: ${ironic.url} answered GET / without a 'kiln' member \\(is it an OpenStack Ironic\\?\\)`,
        ),
      );
      return true;
    });
    assert.deepEqual(ironic.paths, ['/']);
  });

  it("checks a Kiln API's GET / once, then makes its calls", async () => {
    const client = new ApiClient(kiln.url, {}, 'test');
    await client.call('GET', '/v1/nodes');
    await client.call('GET', '/v1/nodes?limit=1');
    assert.deepEqual(kiln.paths, ['/', '/v1/nodes', '/v1/nodes?limit=1']);
  });

  it("turns an API 400 into a usage error carrying the API's message", async () => {
    const client = new ApiClient(kiln.url, {}, 'test');
    await assert.rejects(client.call('POST', '/v1/images', {}), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exitCode, EXIT.usage);
      assert.equal(e.message, 'invalid image: checksum');
      return true;
    });
  });
});
