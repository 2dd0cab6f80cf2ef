// Secrets at rest: a Store decorator that seals a node's secrets on every write and opens them on
// every read, so the database (either backend, its WAL, its backups) holds only ciphertext while
// callers keep seeing plain values. What is sealed:
//   - bmc_password;
//   - every string under a secret-named key in driver_internal_info (agent_secret_token, and any
//     *password*, *secret*, *token*, *credential*, *private_key* the code adds there later);
//   - in instance_info, the tenant's config drive (user_data, SSH keys, meta_data) and image URLs
//     (which may carry credentials), besides secret-named keys;
//   - an image's origin URL (it may carry credentials; only the cache reads it).
// The agent token cannot be hashed like an API token: the conductor has to present it to the
// agent on every command (IPA's agent_token), so it must be recoverable, hence encrypted.
//
// A legacy plain-text value reads back as it is and is sealed on its next write; resealAll()
// seals all of them at once (at start) and re-seals under a new key (kiln secrets rotate-key).
import { isKilnError, KilnError } from '../../shared/errors.ts';
import { isSealed, type SecretBox, sealedKeyId } from '../secrets/box.ts';
import { label } from './common.ts';
import type { ImageStore, NewNode, NodePatch, NodeRecord, NodeStore, Store } from './store.ts';

/** Keys in driver_internal_info whose string values are secrets. */
export const SECRET_KEY = /(password|passphrase|secret|token|credential|private_key|encryption_key)/i;

/** Keys in instance_info whose values (every string beneath them) are the tenant's secrets. */
export const INSTANCE_SECRET_KEY = new RegExp(
  `${SECRET_KEY.source}|^(configdrive|image_url|image_source|user_data)$`,
  'i',
);

type Json = unknown;

/** Seal every string under a secret-named key, at any depth; everything else as it is. */
function sealTree(v: Json, box: SecretBox, secret = false, key: RegExp = SECRET_KEY): Json {
  if (typeof v === 'string') return secret ? box.seal(v) : v;
  if (Array.isArray(v)) return v.map((x) => sealTree(x, box, secret, key));
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, Json> = {};
  for (const [k, x] of Object.entries(v)) out[k] = sealTree(x, box, secret || key.test(k), key);
  return out;
}

/** Open every sealed string, wherever it is (so a key renamed later still opens). */
function openTree(v: Json, open: (s: string) => string): Json {
  if (typeof v === 'string') return isSealed(v) ? open(v) : v;
  if (Array.isArray(v)) return v.map((x) => openTree(x, open));
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, Json> = {};
  for (const [k, x] of Object.entries(v)) out[k] = openTree(x, open);
  return out;
}

function sealPatch<P extends NodePatch | NewNode>(patch: P, box: SecretBox): P {
  const out = { ...patch };
  if (typeof out.bmc_password === 'string') out.bmc_password = box.seal(out.bmc_password);
  if (out.driver_internal_info != null) {
    out.driver_internal_info = sealTree(out.driver_internal_info, box) as Record<string, unknown>;
  }
  if (out.instance_info != null) {
    out.instance_info = sealTree(out.instance_info, box, false, INSTANCE_SECRET_KEY) as Record<
      string,
      unknown
    >;
  }
  return out;
}

/** Name the node in a failure to open one of its secrets: the operator has to find it. */
function opener(node: NodeRecord, open: (s: string) => string): (s: string) => string {
  return (s) => {
    try {
      return open(s);
    } catch (e) {
      if (!isKilnError(e)) throw e;
      throw new KilnError(e.code, `node ${label(node)}: ${e.message}`, {
        details: { node: node.uuid, ...(e.details as object) },
        cause: e,
      });
    }
  };
}

function openNode(node: NodeRecord, box: SecretBox): NodeRecord {
  const open = opener(node, (s) => box.open(s));
  return {
    ...node,
    bmc_password: isSealed(node.bmc_password) ? open(node.bmc_password) : node.bmc_password,
    driver_internal_info: openTree(node.driver_internal_info, open) as Record<string, unknown>,
    instance_info: openTree(node.instance_info, open) as Record<string, unknown>,
  };
}

function sealedImages(images: ImageStore, box: SecretBox): ImageStore {
  const open = <I extends { url: string; name: string }>(img: I): I => {
    if (!isSealed(img.url)) return img;
    try {
      return { ...img, url: box.open(img.url) };
    } catch (e) {
      if (!isKilnError(e)) throw e;
      throw new KilnError(e.code, `image ${img.name}: ${e.message}`, { cause: e, details: e.details });
    }
  };
  return {
    create: async (img) => open(await images.create({ ...img, url: box.seal(img.url) })),
    get: async (uuid) => {
      const img = await images.get(uuid);
      return img ? open(img) : undefined;
    },
    getByName: async (name) => {
      const img = await images.getByName(name);
      return img ? open(img) : undefined;
    },
    list: async () => (await images.list()).map(open),
    setUrl: (uuid, url) => images.setUrl(uuid, box.seal(url)),
    delete: (uuid) => images.delete(uuid),
  };
}

function sealedNodes(nodes: NodeStore, box: SecretBox): NodeStore {
  const open = (n: NodeRecord) => openNode(n, box);
  const maybe = (n: NodeRecord | undefined) => (n ? open(n) : undefined);
  return {
    create: async (n) => open(await nodes.create(sealPatch(n, box))),
    get: async (uuid) => maybe(await nodes.get(uuid)),
    getByName: async (name) => maybe(await nodes.getByName(name)),
    list: async (filter) => (await nodes.list(filter)).map(open),
    count: (filter) => nodes.count(filter),
    update: async (uuid, patch) => open(await nodes.update(uuid, sealPatch(patch, box))),
    delete: (uuid) => nodes.delete(uuid),
    reserve: async (uuid, holder) => open(await nodes.reserve(uuid, holder)),
    release: (uuid, holder) => nodes.release(uuid, holder),
    releaseAll: (prefix) => nodes.releaseAll(prefix),
    transition: async (req) =>
      open(await nodes.transition(req.patch ? { ...req, patch: sealPatch(req.patch, box) } : req)),
  };
}

/** `store` with node secrets sealed by `box` in the database and plain for callers. */
export function sealStore(store: Store, box: SecretBox): Store {
  return {
    kind: store.kind,
    nodes: sealedNodes(store.nodes, box),
    ports: store.ports,
    images: sealedImages(store.images, box),
    events: store.events,
    tokens: store.tokens,
    close: () => store.close(),
  };
}

export interface ResealReport {
  /** Nodes looked at. */
  nodes: number;
  /** Nodes written. */
  changed: number;
  /** Values that were plain text and are now sealed. */
  sealedPlain: number;
  /** Values that were sealed under one of the `from` keys and are now under `box`. */
  resealed: number;
}

const PAGE = 500;

/**
 * Seal every node secret and image URL in `raw` (the undecorated store) under `box`: plain-text values (from
 * before sealing existed) and values sealed under one of the `from` keys (key rotation). Values
 * already under `box` are left alone, so this is idempotent: an interrupted run is finished by
 * running it again. Every value is opened before anything is written, so a value sealed under a
 * key that is neither `box` nor in `from` fails the run (naming the node and the key id) with
 * nothing changed. Writes are per node (one UPDATE each), not one transaction: run it while no
 * conductor writes (at start, before serving; rotation with the conductors stopped).
 */
export async function resealAll(
  raw: Store,
  box: SecretBox,
  opts: { from?: readonly SecretBox[] } = {},
): Promise<ResealReport> {
  const keys = new Map<string, SecretBox>([box, ...(opts.from ?? [])].map((b) => [b.keyId, b]));
  const report: ResealReport = { nodes: 0, changed: 0, sealedPlain: 0, resealed: 0 };
  const plan: { uuid: string; patch: NodePatch }[] = [];

  let marker: string | undefined;
  for (;;) {
    const page = await raw.nodes.list({ marker, limit: PAGE });
    for (const node of page) {
      report.nodes++;
      const reseal = opener(node, (s) => {
        const id = sealedKeyId(s)!;
        if (id === box.keyId) return s;
        // An unknown key id: box.open() throws the "sealed with another key" error.
        const plain = (keys.get(id) ?? box).open(s);
        report.resealed++;
        return box.seal(plain);
      });
      const fix = (v: string): string => {
        if (isSealed(v)) return reseal(v);
        report.sealedPlain++;
        return box.seal(v);
      };
      const patch: NodePatch = {};
      if (typeof node.bmc_password === 'string') {
        const v = fix(node.bmc_password);
        if (v !== node.bmc_password) patch.bmc_password = v;
      }
      const dii = resealTree(node.driver_internal_info, fix, reseal) as Record<string, unknown>;
      if (JSON.stringify(dii) !== JSON.stringify(node.driver_internal_info)) patch.driver_internal_info = dii;
      const ii = resealTree(node.instance_info, fix, reseal, false, INSTANCE_SECRET_KEY) as Record<
        string,
        unknown
      >;
      if (JSON.stringify(ii) !== JSON.stringify(node.instance_info)) patch.instance_info = ii;
      if (Object.keys(patch).length > 0) plan.push({ uuid: node.uuid, patch });
    }
    if (page.length < PAGE) break;
    marker = page[page.length - 1]!.uuid;
  }

  // Image URLs, opened (every one) before anything is written, like the nodes'.
  const urls: { uuid: string; url: string }[] = [];
  for (const img of await raw.images.list()) {
    let url = img.url;
    if (!isSealed(url)) {
      report.sealedPlain++;
      url = box.seal(url);
    } else if (sealedKeyId(url) !== box.keyId) {
      const from = keys.get(sealedKeyId(url)!) ?? box;
      try {
        url = box.seal(from.open(url));
      } catch (e) {
        if (!isKilnError(e)) throw e;
        throw new KilnError(e.code, `image ${img.name}: ${e.message}`, { cause: e, details: e.details });
      }
      report.resealed++;
    }
    if (url !== img.url) urls.push({ uuid: img.uuid, url });
  }

  for (const { uuid, patch } of plan) {
    await raw.nodes.update(uuid, patch);
    report.changed++;
  }
  for (const { uuid, url } of urls) {
    await raw.images.setUrl(uuid, url);
    report.changed++;
  }
  return report;
}

/** Plain strings under secret keys get `plain`; sealed strings anywhere get `sealed`. */
function resealTree(
  v: Json,
  plain: (s: string) => string,
  sealed: (s: string) => string,
  secret = false,
  key: RegExp = SECRET_KEY,
): Json {
  if (typeof v === 'string') return isSealed(v) ? sealed(v) : secret ? plain(v) : v;
  if (Array.isArray(v)) return v.map((x) => resealTree(x, plain, sealed, secret, key));
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, Json> = {};
  for (const [k, x] of Object.entries(v)) out[k] = resealTree(x, plain, sealed, secret || key.test(k), key);
  return out;
}
