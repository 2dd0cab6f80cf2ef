// The conductor side of the ramdisk protocol: `GET /v1/lookup` and `POST /v1/heartbeat/{node}`,
// answering exactly as Ironic 21.4.4 does so that a stock ironic-python-agent works against Kiln:
// the microversion gates, the 400/404/409 rules, one token per boot (the real one once, "******"
// afterwards), and Ironic's error body {"error_message": "<json string>"}.
// Stricter than Ironic, because anyone on the provisioning network can call these: lookup only by
// registered MACs (a UUID alone only for a pregenerated token), in fast-track states only while a
// ramdisk the conductor booted runs; a second lookup for one boot is a security event that fails
// work in flight; a heartbeat's token is checked (in constant time) before anything that depends
// on the node, and its callback_url must name the address it came from.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import { isKilnError, KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { normaliseMac } from '../../shared/mac.ts';
import { ProvisionState } from '../../shared/states.ts';
import { IRONIC_API_MAX_VERSION, IRONIC_API_MIN_VERSION } from '../../shared/version.ts';
import { compareVersions, HeartbeatBody, IRONIC_API, MASKED } from '../../shared/wire/ipa.ts';
import { readsOwnBody } from '../api/http.ts';
import { maskUrl } from '../images/url-policy.ts';
import { recordSecurityIncident } from '../nodes/security.ts';
import type { NodeRecord, Store } from '../store/store.ts';
import { ironicErrors } from './ironic-errors.ts';

export { versionRouter } from '../api/routes/version.ts';

const S = ProvisionState;

/** Ironic's LOOKUP_ALLOWED_STATES (Kiln has no rescue). */
export const LOOKUP_STATES: readonly string[] = [
  S.deploying,
  S.waitCallBack,
  S.cleaning,
  S.cleanWait,
  S.inspecting,
  S.inspectWait,
];
/** With fast-track a live ramdisk may also sit in these states. */
export const FAST_TRACK_STATES: readonly string[] = [S.enroll, S.manageable, S.available];
/**
 * Heartbeats are processed in these states (Ironic's list plus Kiln's in-band inspection);
 * others are accepted with 202 and ignored, as Ironic does.
 */
export const HEARTBEAT_STATES: readonly string[] = [
  S.waitCallBack,
  S.cleanWait,
  S.deploying,
  S.cleaning,
  S.inspecting,
  S.inspectWait,
];

export interface RamdiskApiDeps {
  store: Store;
  log: Logger;
  /**
   * Where heartbeats go: the provision engine records each under the node's reservation and
   * continues the node's work under that same reservation. Without it heartbeats are only
   * recorded (recordingHeartbeats), as a conductor-less ramdisk API does.
   */
  heartbeats?: HeartbeatSink;
  /** Accept lookups and heartbeats from live ramdisks in enroll/manageable/available. */
  fastTrack: boolean | ((node: NodeRecord) => boolean);
  /** Ironic's [api]ramdisk_heartbeat_timeout, handed to agents (default 300 s). */
  heartbeatTimeoutS?: number;
  /** Base URL for node links; defaults to the request's origin. */
  publicUrl?: string;
  /** Names this process in reservations (the conductor id). */
  lockHolder?: string;
  /** Ironic's [api]restrict_lookup (default true). */
  restrictLookup?: boolean;
  /**
   * provisioning.callback_host: 'source' (default) accepts a heartbeat only when its
   * callback_url's host is the address the heartbeat came from; 'any' accepts any host (agents
   * behind NAT, whose advertised address is not the one the conductor sees).
   */
  callbackHost?: 'source' | 'any';
  /** How long a security event waits for a node locked by other work (ms; tests shorten it). */
  securityLockWaitMs?: number;
}

/** What became of a heartbeat: skipped on a locked node, recorded, or recorded and continuing. */
export type HeartbeatOutcome = 'locked' | 'gone' | 'recorded' | 'continuing';

/** The seam between the ramdisk API and the provision engine (ProvisionEngine implements it). */
export interface HeartbeatSink {
  heartbeat(
    nodeUuid: string,
    record: (node: NodeRecord) => Partial<NodeRecord>,
    opts: { commandRunning: boolean; resume: boolean },
  ): Promise<HeartbeatOutcome>;
}

/**
 * A sink that records heartbeats under the node's reservation and continues nothing; calls
 * `onContinue` where an engine would continue the node's work (tests watch that).
 */
export function recordingHeartbeats(
  store: Store,
  holderBase: string,
  onContinue?: (node: NodeRecord) => void,
): HeartbeatSink {
  return {
    async heartbeat(uuid, record, opts) {
      const holder = `${holderBase}-heartbeat-${randomBytes(4).toString('hex')}`;
      try {
        await store.nodes.reserve(uuid, holder);
      } catch (e) {
        if (isKilnError(e) && e.code === 'NODE_LOCKED') return 'locked';
        throw e;
      }
      let node: NodeRecord;
      try {
        const current = await store.nodes.get(uuid);
        if (!current) return 'gone';
        node = await store.nodes.update(uuid, record(current));
      } finally {
        await store.nodes.release(uuid, holder);
      }
      if (!opts.resume || opts.commandRunning) return 'recorded';
      onContinue?.(node);
      return 'continuing';
    },
  };
}

export { ironicErrorBody } from './ironic-errors.ts';

/** Parse X-OpenStack-Ironic-API-Version like Ironic: absent → minimum, "latest" → maximum, else 406. */
export function requestedVersion(header: string | undefined): string {
  if (header === undefined || header === '') return IRONIC_API_MIN_VERSION;
  const h = header.trim().toLowerCase();
  if (h === 'latest') return IRONIC_API_MAX_VERSION;
  if (!/^\d+\.\d+$/.test(h))
    throw new KilnError('VERSION_UNSUPPORTED', 'Invalid value for X-OpenStack-Ironic-API-Version header');
  if (compareVersions(h, IRONIC_API_MIN_VERSION) < 0 || compareVersions(h, IRONIC_API_MAX_VERSION) > 0) {
    throw new KilnError(
      'VERSION_UNSUPPORTED',
      `Version ${h} was requested but the minor version is not supported by this service. The supported version range is: [${IRONIC_API_MIN_VERSION}, ${IRONIC_API_MAX_VERSION}].`,
    );
  }
  return h;
}

/** secrets.token_urlsafe(): 32 random bytes, 43 URL-safe characters. */
export function newAgentToken(): string {
  return randomBytes(32).toString('base64url');
}

import { agentNodeView } from '../nodes/agent-view.ts';

export { agentNodeView, maskSecrets } from '../nodes/agent-view.ts';

/**
 * Equal secrets, compared in constant time: digests first, so lengths don't leak either, and the
 * same work when there is nothing to compare with (an unknown node, no token on record), so the
 * time taken doesn't tell those apart from a wrong token.
 */
export function sameSecret(given: unknown, expected: unknown): boolean {
  const usable = (v: unknown): v is string => typeof v === 'string' && v !== '';
  const dg = createHash('sha256')
    .update(usable(given) ? given : '')
    .digest();
  const de = createHash('sha256')
    .update(usable(expected) ? expected : '\0')
    .digest();
  return timingSafeEqual(dg, de) && usable(given) && usable(expected);
}

/** An address as the socket gives it, with IPv4-mapped IPv6 (::ffff:a.b.c.d) as plain IPv4. */
export function normaliseIp(ip: string | undefined): string {
  const s = (ip ?? '').toLowerCase().replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  return mapped ? mapped[1]! : s;
}

/** The host of a callback URL, normalised like a socket address (brackets off, IPv4-mapped plain). */
function callbackIp(url: URL): string {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // The URL parser writes ::ffff:a.b.c.d as ::ffff:xxxx:xxxx; rebuild the dotted form.
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(host);
  if (hex) {
    const hi = Number.parseInt(hex[1]!, 16);
    const lo = Number.parseInt(hex[2]!, 16);
    return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  }
  return normaliseIp(host);
}

/** driver_internal_info key binding "the pregenerated token was looked up once" to that token. */
const PREGEN_LOOKED_UP = 'agent_secret_token_looked_up';
const tokenTag = (token: string) => createHash('sha256').update(token).digest('hex').slice(0, 16);

/**
 * Whether the conductor booted a ramdisk on this node and has not powered it off since: the
 * node is on, and its latest ramdisk boot (the agent workflow's boot_ramdisk event) comes after
 * its latest power action (every conductor power change that is not a ramdisk boot either
 * records a 'power' event or sets power_state to off).
 */
export async function conductorBootedRamdisk(store: Store, node: NodeRecord): Promise<boolean> {
  if (node.power_state !== 'power on') return false;
  const events = await store.events.list(node.uuid, { limit: 500 });
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.event === 'boot_ramdisk') return true;
    if (e.event === 'power') return false;
  }
  return false;
}

/** Forget the ramdisk: its token, URL and certificate die with it (power off, reboot). */
export async function wipeAgentToken(store: Store, uuid: string): Promise<NodeRecord> {
  const node = await store.nodes.get(uuid);
  if (!node) throw new Error(`node ${uuid} not found while wiping its agent token`);
  const {
    agent_secret_token: _t,
    agent_secret_token_pregenerated: _p,
    agent_url: _u,
    agent_verify_ca: _c,
    agent_progress: _g,
    [PREGEN_LOOKED_UP]: _l,
    ...rest
  } = node.driver_internal_info;
  return store.nodes.update(uuid, { driver_internal_info: rest });
}

const BODY_LIMIT = 1024 * 1024;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function setVersionHeaders(ctx: Context, version: string | null): void {
  ctx.set('X-OpenStack-Ironic-API-Minimum-Version', IRONIC_API_MIN_VERSION);
  ctx.set('X-OpenStack-Ironic-API-Maximum-Version', IRONIC_API_MAX_VERSION);
  if (version) ctx.set('X-OpenStack-Ironic-API-Version', version);
}

/** The body as JSON, read here so that its errors are answered in Ironic's shape (readsOwnBody). */
async function readJson(ctx: Context): Promise<unknown> {
  const parsed = (ctx.request as { body?: unknown }).body;
  if (parsed !== undefined) return parsed;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of ctx.req as AsyncIterable<Buffer>) {
    size += c.length;
    // Past the limit keep reading, dropping the bytes, so the client gets the 413, not a reset.
    if (size <= BODY_LIMIT) chunks.push(c);
  }
  if (size > BODY_LIMIT) throw new KilnError('VALIDATION_FAILED', 'Request body too large', { status: 413 });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  const type = ctx.get('content-type');
  if (type && !/json/i.test(type)) {
    throw new KilnError('VALIDATION_FAILED', `request body must be application/json, got ${type}`, {
      status: 415,
    });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KilnError('VALIDATION_FAILED', `Invalid JSON body: ${(e as Error).message}`);
  }
}

export function createRamdiskRouter(deps: RamdiskApiDeps): Router {
  // Reads its own bodies, so that a bad one is answered in Ironic's shape too.
  const router = readsOwnBody(new Router());
  const log = deps.log.child({ component: 'ramdisk-api' });
  // The Ironic-shaped wire's one error path.
  router.use(ironicErrors(log));
  const holderBase = deps.lockHolder ?? 'ramdisk-api';
  const fastTrack = (n: NodeRecord) =>
    typeof deps.fastTrack === 'function' ? deps.fastTrack(n) : deps.fastTrack;
  const base = (ctx: Context) => (deps.publicUrl ?? `${ctx.protocol}://${ctx.host}`).replace(/\/$/, '');

  const handle =
    (fn: (ctx: Context, version: string) => Promise<void>) =>
    async (ctx: Context): Promise<void> => {
      let version: string | null = null;
      try {
        version = requestedVersion(ctx.get('X-OpenStack-Ironic-API-Version') || undefined);
        await fn(ctx, version);
      } finally {
        // On errors too: ironicErrors (mounted below) answers them with these headers set.
        setVersionHeaders(ctx, version);
      }
    };

  const security = {
    store: deps.store,
    log,
    holderBase,
    lockWaitMs: deps.securityLockWaitMs,
  };

  /**
   * A lookup while the node's token is outstanding: the ramdisk that got it is either gone
   * (then the node was power-cycled and the token wiped) or still running, so this caller is
   * another one. Ironic answers "******" and carries on; Kiln records it, and a node in the
   * middle of work fails rather than go on with whichever agent answers.
   */
  function secondLookup(node: NodeRecord, source: string, macs: string[]): void {
    const what = `a second ramdisk lookup from ${source || 'an unknown address'}${macs.length ? ` (MACs ${macs.join(', ')})` : ''} while the agent token handed out for this boot is still outstanding`;
    // The caller's answer does not wait for (or reveal) what becomes of the node.
    recordSecurityIncident(security, node, { what, actor: 'ramdisk-api', failWork: true }).catch((e) =>
      log.error({ node: node.uuid, err: e }, 'could not record a security event'),
    );
  }

  /**
   * Ironic's get_node_with_token, one token per boot: the token goes out once, under the node's
   * lock; later lookups get "******". A pregenerated token (handed to the ramdisk another way)
   * is answered "******" once without alarm.
   */
  async function tokenFor(
    node: NodeRecord,
    source: string,
    macs: string[],
  ): Promise<{ node: NodeRecord; token: string }> {
    const outstanding = (n: NodeRecord): boolean => {
      const dii = n.driver_internal_info;
      if (typeof dii.agent_secret_token !== 'string' || !dii.agent_secret_token) return false;
      return !(
        dii.agent_secret_token_pregenerated && dii[PREGEN_LOOKED_UP] !== tokenTag(dii.agent_secret_token)
      );
    };
    if (outstanding(node)) {
      secondLookup(node, source, macs);
      return { node, token: MASKED };
    }
    const holder = `${holderBase}-lookup-${randomBytes(4).toString('hex')}`;
    try {
      await deps.store.nodes.reserve(node.uuid, holder);
    } catch (e) {
      if (isKilnError(e) && e.code === 'NODE_LOCKED') {
        throw new KilnError(
          'NODE_LOCKED',
          `Node ${node.uuid} is locked by host ${node.reservation ?? 'another conductor'}, please retry after the current operation is completed.`,
        );
      }
      throw e;
    }
    let second: NodeRecord | undefined;
    try {
      const fresh = (await deps.store.nodes.get(node.uuid)) ?? node;
      const dii = fresh.driver_internal_info;
      if (outstanding(fresh)) {
        second = fresh;
        return { node: fresh, token: MASKED };
      }
      if (typeof dii.agent_secret_token === 'string' && dii.agent_secret_token) {
        // Pregenerated, first lookup: remember it, so a second one is noticed.
        const updated = await deps.store.nodes.update(node.uuid, {
          driver_internal_info: { ...dii, [PREGEN_LOOKED_UP]: tokenTag(dii.agent_secret_token) },
        });
        return { node: updated, token: MASKED };
      }
      const token = newAgentToken();
      const updated = await deps.store.nodes.update(node.uuid, {
        driver_internal_info: { ...dii, agent_secret_token: token },
      });
      log.info({ node: node.uuid }, 'agent token issued');
      return { node: updated, token };
    } finally {
      await deps.store.nodes.release(node.uuid, holder);
      if (second) secondLookup(second, source, macs);
    }
  }

  /**
   * The node a lookup names, or undefined: by the MACs of registered ports (all of one node);
   * a node_uuid must be that same node, and names a node on its own only when the node's token
   * was pregenerated (the ramdisk already holds it, so the UUID proves nothing by itself).
   */
  async function lookupTarget(macs: string[], nodeUuid: string | undefined): Promise<NodeRecord | undefined> {
    const owners = new Set<string>();
    for (const mac of macs) {
      const port = await deps.store.ports.getByAddress(mac);
      if (port) owners.add(port.node_uuid);
    }
    // Ironic refuses to guess when the MACs belong to several nodes.
    if (owners.size > 1) {
      log.error({ macs, nodes: [...owners] }, 'lookup MACs match several nodes');
      return undefined;
    }
    const byMac = owners.size === 1 ? [...owners][0]! : undefined;
    if (!nodeUuid) return byMac ? deps.store.nodes.get(byMac) : undefined;
    const uuid = nodeUuid.toLowerCase();
    if (byMac && byMac !== uuid) {
      log.warn({ macs, node_uuid: uuid, owner: byMac }, 'lookup MACs belong to another node');
      return undefined;
    }
    const node = await deps.store.nodes.get(uuid);
    if (!node) return undefined;
    if (byMac || node.driver_internal_info.agent_secret_token_pregenerated) return node;
    log.warn({ node: uuid, macs }, 'lookup by node_uuid without any of its MACs refused');
    return undefined;
  }

  /** Lookup's states: Ironic's, and with fast-track the idle ones while a ramdisk it booted runs. */
  async function lookupAllowed(node: NodeRecord): Promise<boolean> {
    if (deps.restrictLookup === false) return true;
    if (LOOKUP_STATES.includes(node.provision_state)) return true;
    if (!FAST_TRACK_STATES.includes(node.provision_state) || !fastTrack(node)) return false;
    return conductorBootedRamdisk(deps.store, node);
  }

  router.get(
    ['/v1/lookup', '/v1/lookup/'],
    handle(async (ctx, version) => {
      if (compareVersions(version, IRONIC_API.ramdiskEndpoints) < 0)
        throw new KilnError('NOT_FOUND', 'Resource could not be found.');
      const raw = ctx.query.addresses;
      const list = (Array.isArray(raw) ? raw : raw ? [raw] : [])
        .flatMap((a) => a.split(','))
        .filter((a) => a.trim() !== '');
      const macs = list.map(normaliseMac).filter((m): m is string => m !== null);
      const invalid = list.filter((a) => normaliseMac(a) === null);
      if (invalid.length) log.warn({ invalid }, 'lookup ignores invalid MAC addresses');
      const nodeUuid = typeof ctx.query.node_uuid === 'string' ? ctx.query.node_uuid : undefined;
      if (nodeUuid !== undefined && !UUID_RE.test(nodeUuid)) {
        throw new KilnError('VALIDATION_FAILED', `Expected a UUID for node_uuid: ${nodeUuid}`);
      }
      if (macs.length === 0 && !nodeUuid) {
        throw new KilnError(
          'VALIDATION_FAILED',
          "At least one of 'addresses' and 'node_uuid' parameters is required",
        );
      }
      let node = await lookupTarget(macs, nodeUuid);
      // Not found, not this node's MACs and wrong state answer alike, on purpose: lookup reveals nothing.
      if (!node) {
        log.warn({ macs, node_uuid: nodeUuid }, 'lookup found no node');
        throw new KilnError('NOT_FOUND', 'Resource could not be found.');
      }
      if (!(await lookupAllowed(node))) {
        log.warn(
          { node: node.uuid, state: node.provision_state, power: node.power_state },
          'lookup not allowed in this provision state',
        );
        throw new KilnError('NOT_FOUND', 'Resource could not be found.');
      }
      let token: string | null = null;
      if (compareVersions(version, IRONIC_API.agentToken) >= 0) {
        const t = await tokenFor(node, normaliseIp(ctx.req.socket.remoteAddress), macs);
        node = t.node;
        token = t.token;
      }
      ctx.status = 200;
      ctx.body = {
        node: agentNodeView(node, base(ctx)),
        config: {
          metrics: {
            backend: 'noop',
            prepend_host: false,
            prepend_uuid: false,
            prepend_host_reverse: true,
            global_prefix: null,
          },
          metrics_statsd: { statsd_host: 'localhost', statsd_port: 8125 },
          heartbeat_timeout: deps.heartbeatTimeoutS ?? 300,
          agent_token: token,
          agent_token_required: true,
          disable_deep_image_inspection: false,
          permitted_image_formats: ['raw', 'qcow2', 'iso'],
          enable_bios_bootloader_install: true,
        },
      };
    }),
  );

  router.post(
    ['/v1/heartbeat/:node', '/v1/heartbeat/:node/'],
    handle(async (ctx, version) => {
      if (compareVersions(version, IRONIC_API.ramdiskEndpoints) < 0)
        throw new KilnError('NOT_FOUND', 'Resource could not be found.');
      const raw = await readJson(ctx);
      const parsed = HeartbeatBody.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const field =
          issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : 'body');
        throw new KilnError(
          'VALIDATION_FAILED',
          issue.code === 'unrecognized_keys'
            ? `Unknown argument: "${field}"`
            : `Invalid value for ${field}: ${issue.message}`,
        );
      }
      const b = parsed.data;
      if (b.agent_version && compareVersions(version, IRONIC_API.agentVersionInHeartbeat) < 0) {
        throw new KilnError('VALIDATION_FAILED', 'Field "agent_version" not recognised');
      }
      if (
        (b.agent_status || b.agent_status_message) &&
        compareVersions(version, IRONIC_API.agentStatus) < 0
      ) {
        throw new KilnError(
          'VALIDATION_FAILED',
          'Fields "agent_status" and "agent_status_message" not recognised.',
        );
      }
      if (b.agent_verify_ca != null && compareVersions(version, IRONIC_API.agentVerifyCa) < 0) {
        throw new KilnError('VALIDATION_FAILED', 'Field "agent_verify_ca" not recognised in this version');
      }
      // Checks on the request alone come first: their answers say nothing about the node.
      let callback: URL;
      try {
        callback = new URL(b.callback_url);
        if (callback.protocol !== 'http:' && callback.protocol !== 'https:') throw new Error('not http');
      } catch {
        throw new KilnError(
          'VALIDATION_FAILED',
          'An issue with the supplied "callback_url" has been detected.',
        );
      }
      // A certificate is only worth pinning on a TLS call-back; plain HTTP beside one is a downgrade.
      if (b.agent_verify_ca && callback.protocol !== 'https:')
        throw new KilnError(
          'VALIDATION_FAILED',
          'The "callback_url" must be https when "agent_verify_ca" is sent.',
        );
      const ident = ctx.params.node!;
      if (b.agent_token == null) {
        log.error({ node: ident }, 'heartbeat without an agent token');
        throw new KilnError('VALIDATION_FAILED', 'Agent token is required for heartbeat processing.');
      }
      if (b.agent_status != null && !['start', 'end', 'error'].includes(b.agent_status)) {
        throw new KilnError(
          'VALIDATION_FAILED',
          'Agent status is invalid. Valid states are start,end,error.',
        );
      }
      if (!b.agent_version && !b.agent_status)
        throw new KilnError('VALIDATION_FAILED', 'Agent did not transmit a version');
      // Then the token, before anything that depends on the node: an unknown node, a node
      // without a token and a wrong token answer alike, so a caller without the token learns
      // nothing (not whether the node exists, its state, or its recorded callback).
      const node = UUID_RE.test(ident)
        ? await deps.store.nodes.get(ident.toLowerCase())
        : await deps.store.nodes.getByName(ident);
      const dii = node?.driver_internal_info ?? {};
      if (!node || !sameSecret(b.agent_token, dii.agent_secret_token)) {
        log.error({ node: node?.uuid ?? ident }, 'heartbeat with an invalid agent token');
        throw new KilnError('VALIDATION_FAILED', 'Invalid or missing agent token received.');
      }
      // The token's holder: its call-back must be where it speaks from (unless NAT says otherwise),
      // so that a leaked token cannot send the conductor's commands, image and config drive elsewhere.
      const source = normaliseIp(ctx.req.socket.remoteAddress);
      if ((deps.callbackHost ?? 'source') === 'source' && callbackIp(callback) !== source) {
        log.error(
          { node: node.uuid, callback: callback.host, source },
          'heartbeat callback_url host is not its source address',
        );
        throw new KilnError(
          'VALIDATION_FAILED',
          `The "callback_url" host ${callback.hostname} is not the address this heartbeat came from (${source}); behind NAT set provisioning.callback_host to "any"`,
        );
      }
      if (typeof dii.agent_url === 'string' && dii.agent_url !== b.callback_url) {
        log.error(
          { node: node.uuid, url: b.callback_url, recorded: dii.agent_url },
          'heartbeat with a changed callback URL',
        );
        throw new KilnError('VALIDATION_FAILED', 'Detected change in ramdisk provided "callback_url"');
      }
      if (
        b.agent_verify_ca &&
        typeof dii.agent_verify_ca === 'string' &&
        dii.agent_verify_ca !== b.agent_verify_ca
      ) {
        throw new KilnError('VALIDATION_FAILED', 'Detected change in ramdisk provided "agent_verify_ca"');
      }
      // Ironic answers 202 and processes the heartbeat in a worker; recording it before the
      // answer keeps "accepted" and "visible in the store" in order for the caller.
      try {
        await recordHeartbeat(node, b);
      } catch (e) {
        log.error({ node: node.uuid, err: e }, 'could not record heartbeat');
      }
      ctx.status = 202;
      ctx.body = '';
    }),
  );

  const sink = deps.heartbeats ?? recordingHeartbeats(deps.store, holderBase);

  /**
   * The asynchronous half of Ironic's heartbeat, in one reservation: the sink records what the
   * agent reported and, in a work state, continues the node's work.
   */
  async function recordHeartbeat(node: NodeRecord, b: HeartbeatBody): Promise<void> {
    const ft = fastTrack(node);
    const recordOnly = ft && FAST_TRACK_STATES.includes(node.provision_state);
    if (!HEARTBEAT_STATES.includes(node.provision_state) && !recordOnly) {
      log.debug(
        { node: node.uuid, state: node.provision_state },
        'heartbeat ignored in this provision state',
      );
      return;
    }
    const outcome = await sink.heartbeat(
      node.uuid,
      (fresh) => {
        const info: Record<string, unknown> = {
          ...fresh.driver_internal_info,
          agent_url: b.callback_url,
          agent_version: b.agent_version ?? null,
          agent_last_heartbeat: new Date().toISOString(),
        };
        if (b.agent_verify_ca) info.agent_verify_ca = b.agent_verify_ca;
        if (b.kiln_progress !== undefined) info.agent_progress = b.kiln_progress;
        return { driver_internal_info: info };
      },
      // Progress is sent only while a command runs: nothing to ask the agent about yet.
      { resume: !recordOnly, commandRunning: b.kiln_progress != null },
    );
    // As Ironic: a busy node skips this heartbeat; the next one arrives soon.
    if (outcome === 'locked') log.debug({ node: node.uuid }, 'node locked; heartbeat skipped');
    else log.debug({ node: node.uuid, outcome }, 'heartbeat recorded');
  }

  return router;
}
