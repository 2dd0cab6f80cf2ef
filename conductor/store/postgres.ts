// The PostgreSQL store, for several conductors sharing one database. Same contract as the SQLite
// store (test/contract/store.contract.ts); the differences are all about concurrency between
// connections: the lock is a conditional UPDATE (row locks make the second caller re-check the
// WHERE clause after the first commits), and a transition holds the node row FOR UPDATE while it
// checks lock and state, so nothing can move the node between the check and the write.
import pg from 'pg';
import { isKilnError, KilnError } from '../../shared/errors.ts';
import type { ProvisionState } from '../../shared/states.ts';
import {
  isoTime,
  JSON_COLUMNS,
  label,
  limitOf,
  macKey,
  nodeLocked,
  nodeNotFound,
  now,
  PATCH_COLUMNS,
  tokenNameTaken,
  tokenNotFound,
} from './common.ts';
import { POSTGRES_MIGRATIONS, pendingMigrations } from './migrations.ts';
import type {
  ApiTokenRecord,
  EventRecord,
  EventStore,
  ImageRecord,
  ImageStore,
  NewEvent,
  NewNode,
  NodeFilter,
  NodePatch,
  NodeRecord,
  NodeStore,
  PortRecord,
  PortStore,
  Store,
  TokenStore,
  TransitionRequest,
} from './store.ts';

type Row = Record<string, unknown>;
type Queryable = pg.Pool | pg.PoolClient;

/** Any constant works; it only has to be the same for every Kiln running migrations. */
const MIGRATION_LOCK_KEY = 0x6b696c6e; // "kiln"

const iso = (v: unknown) => (v === null ? null : (v as Date).toISOString());

interface PgError {
  code?: string;
  constraint?: string;
}
const pgError = (e: unknown): PgError => (typeof e === 'object' && e !== null ? (e as PgError) : {});
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';

/** Turn a violation of `constraint` into CONFLICT naming the duplicate; anything else passes through. */
function conflict(e: unknown, constraint: string, message: string, details: Row): unknown {
  const err = pgError(e);
  if (err.code === UNIQUE_VIOLATION && err.constraint === constraint) {
    return new KilnError('CONFLICT', message, { details, cause: e });
  }
  return e;
}

function nodeWriteError(e: unknown, uuid: string, name: unknown): unknown {
  const pk = conflict(e, 'nodes_pkey', `a node with UUID ${uuid} already exists`, { uuid });
  if (pk !== e) return pk;
  return conflict(e, 'nodes_name_key', `a node named ${name} already exists; choose another name`, { name });
}

function nodeFromRow(r: Row): NodeRecord {
  return {
    uuid: r.uuid as string,
    name: r.name as string | null,
    driver: r.driver as string,
    bmc_address: r.bmc_address as string | null,
    bmc_password: r.bmc_password as string | null,
    properties: r.properties as Record<string, unknown>,
    extra: r.extra as Record<string, unknown>,
    instance_info: r.instance_info as Record<string, unknown>,
    driver_internal_info: r.driver_internal_info as Record<string, unknown>,
    inventory: r.inventory as Record<string, unknown> | null,
    provision_state: r.provision_state as ProvisionState,
    target_provision_state: r.target_provision_state as ProvisionState | null,
    power_state: r.power_state as string | null,
    last_error: r.last_error as string | null,
    maintenance: r.maintenance as boolean,
    maintenance_reason: r.maintenance_reason as string | null,
    reservation: r.reservation as string | null,
    created_at: iso(r.created_at)!,
    updated_at: iso(r.updated_at)!,
    provision_updated_at: iso(r.provision_updated_at),
  };
}

function portFromRow(r: Row): PortRecord {
  return {
    uuid: r.uuid as string,
    address: r.address as string,
    node_uuid: r.node_uuid as string,
    pxe_enabled: r.pxe_enabled as boolean,
    extra: r.extra as Record<string, unknown>,
    created_at: iso(r.created_at)!,
  };
}

function imageFromRow(r: Row): ImageRecord {
  return {
    uuid: r.uuid as string,
    name: r.name as string,
    url: r.url as string,
    checksum_algo: r.checksum_algo as string,
    checksum: r.checksum as string,
    format: r.format as string,
    // BIGINT arrives as a string: pg will not guess whether it fits a JS number. Image sizes do.
    size: r.size === null ? null : Number(r.size),
    image_type: r.image_type as string,
    created_at: iso(r.created_at)!,
  };
}

function eventFromRow(r: Row): EventRecord {
  return {
    id: Number(r.id),
    node_uuid: r.node_uuid as string,
    event: r.event as string,
    actor: r.actor as string,
    result: r.result as EventRecord['result'],
    from_state: r.from_state as string | null,
    to_state: r.to_state as string | null,
    message: r.message as string | null,
    created_at: iso(r.created_at)!,
  };
}

function tokenFromRow(r: Row): ApiTokenRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    role: r.role as ApiTokenRecord['role'],
    hash: r.hash as string,
    created_at: iso(r.created_at)!,
    expires_at: iso(r.expires_at),
    last_used_at: iso(r.last_used_at),
  };
}

/** Collects positional parameters so SQL fragments can be built in any order. */
class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

function patchSets(patch: NodePatch, p: Params): string[] {
  const sets: string[] = [];
  for (const col of PATCH_COLUMNS) {
    const v = patch[col];
    if (v === undefined) continue;
    // Stringify JSON ourselves: pg would turn a top-level array into a PostgreSQL array literal.
    if (JSON_COLUMNS.has(col)) sets.push(`${col} = ${p.add(v === null ? null : JSON.stringify(v))}::jsonb`);
    else sets.push(`${col} = ${p.add(v)}`);
  }
  return sets;
}

function filterWhere(filter: NodeFilter, p: Params): string {
  const clauses: string[] = [];
  if (filter.provision_state !== undefined)
    clauses.push(`provision_state = ${p.add(filter.provision_state)}`);
  if (filter.maintenance !== undefined) clauses.push(`maintenance = ${p.add(filter.maintenance)}`);
  if (filter.driver !== undefined) clauses.push(`driver = ${p.add(filter.driver)}`);
  if (filter.marker !== undefined) clauses.push(`uuid > ${p.add(filter.marker)}`);
  return clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
}

async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

/**
 * Held from an event's id being drawn until its transaction commits, so event ids become visible
 * in order: without it, a transaction that drew id 7 could commit after one that drew id 8, and a
 * stream that had already read 8 (listSince) would never see 7. The key is arbitrary, fixed.
 */
const EVENTS_ORDER_LOCK = 0x6b696c6e; // "kiln"

/** Insert an event; `q` must be inside a transaction (the order lock lasts until its commit). */
async function insertEvent(q: Queryable, ev: NewEvent): Promise<EventRecord> {
  await q.query('SELECT pg_advisory_xact_lock($1)', [EVENTS_ORDER_LOCK]);
  try {
    const { rows } = await q.query(
      `INSERT INTO events (node_uuid, event, actor, result, from_state, to_state, message, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      [
        ev.node_uuid,
        ev.event,
        ev.actor,
        ev.result,
        ev.from_state ?? null,
        ev.to_state ?? null,
        ev.message ?? null,
        now(),
      ],
    );
    return eventFromRow(rows[0]);
  } catch (e) {
    if (pgError(e).code === FOREIGN_KEY_VIOLATION) throw nodeNotFound(ev.node_uuid);
    throw e;
  }
}

function nodeStore(pool: pg.Pool): NodeStore {
  const getRow = async (q: Queryable, uuid: string, forUpdate = false) =>
    (await q.query(`SELECT * FROM nodes WHERE uuid = $1${forUpdate ? ' FOR UPDATE' : ''}`, [uuid])).rows[0] as
      | Row
      | undefined;

  return {
    async create(n: NewNode) {
      const ts = now();
      try {
        const { rows } = await pool.query(
          `INSERT INTO nodes (uuid, name, driver, bmc_address, bmc_password, properties, extra, instance_info,
             driver_internal_info, inventory, provision_state, power_state, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb, $10::jsonb, $11, $12, $13, $13)
           RETURNING *`,
          [
            n.uuid,
            n.name ?? null,
            n.driver,
            n.bmc_address ?? null,
            n.bmc_password ?? null,
            JSON.stringify(n.properties ?? {}),
            JSON.stringify(n.extra ?? {}),
            JSON.stringify(n.instance_info ?? {}),
            JSON.stringify(n.driver_internal_info ?? {}),
            n.inventory == null ? null : JSON.stringify(n.inventory),
            n.provision_state ?? 'enroll',
            n.power_state ?? null,
            ts,
          ],
        );
        return nodeFromRow(rows[0]);
      } catch (e) {
        throw nodeWriteError(e, n.uuid, n.name);
      }
    },

    async get(uuid) {
      const row = await getRow(pool, uuid);
      return row ? nodeFromRow(row) : undefined;
    },

    async getByName(name) {
      const { rows } = await pool.query('SELECT * FROM nodes WHERE name = $1', [name]);
      return rows[0] ? nodeFromRow(rows[0]) : undefined;
    },

    async list(filter = {}) {
      const p = new Params();
      const where = filterWhere(filter, p);
      const limit = p.add(limitOf(filter.limit));
      const { rows } = await pool.query(
        `SELECT * FROM nodes ${where} ORDER BY uuid LIMIT ${limit}`,
        p.values,
      );
      return rows.map(nodeFromRow);
    },

    async count(filter = {}) {
      const p = new Params();
      const where = filterWhere(
        { provision_state: filter.provision_state, maintenance: filter.maintenance, driver: filter.driver },
        p,
      );
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM nodes ${where}`, p.values);
      return rows[0].n as number;
    },

    async update(uuid, patch) {
      const p = new Params();
      const sets = [`updated_at = ${p.add(now())}`, ...patchSets(patch, p)];
      let rows: Row[];
      try {
        ({ rows } = await pool.query(
          `UPDATE nodes SET ${sets.join(', ')} WHERE uuid = ${p.add(uuid)} RETURNING *`,
          p.values,
        ));
      } catch (e) {
        throw nodeWriteError(e, uuid, patch.name);
      }
      if (!rows[0]) throw nodeNotFound(uuid);
      return nodeFromRow(rows[0]);
    },

    async delete(uuid) {
      const { rowCount } = await pool.query('DELETE FROM nodes WHERE uuid = $1', [uuid]);
      if (rowCount === 0) throw nodeNotFound(uuid);
    },

    async reserve(uuid, holder) {
      // A lock released between our failed UPDATE and the look-up is free again: try once more
      // rather than report "locked by nobody".
      for (let attempt = 0; ; attempt++) {
        const { rows } = await pool.query(
          'UPDATE nodes SET reservation = $2 WHERE uuid = $1 AND reservation IS NULL RETURNING *',
          [uuid, holder],
        );
        if (rows[0]) return nodeFromRow(rows[0]);
        const row = await getRow(pool, uuid);
        if (!row) throw nodeNotFound(uuid);
        const node = nodeFromRow(row);
        if (node.reservation !== null || attempt >= 2) throw nodeLocked(node, node.reservation);
      }
    },

    async release(uuid, holder) {
      await pool.query('UPDATE nodes SET reservation = NULL WHERE uuid = $1 AND reservation = $2', [
        uuid,
        holder,
      ]);
    },

    async releaseAll(holderPrefix) {
      if (holderPrefix === '') {
        throw new KilnError(
          'VALIDATION_FAILED',
          'releaseAll needs a non-empty holder prefix; it would free every lock',
        );
      }
      // starts_with() rather than LIKE: a prefix containing % or _ must match literally.
      const { rowCount } = await pool.query(
        'UPDATE nodes SET reservation = NULL WHERE starts_with(reservation, $1)',
        [holderPrefix],
      );
      return rowCount ?? 0;
    },

    async transition(req: TransitionRequest) {
      return inTransaction(pool, async (c) => {
        const row = await getRow(c, req.uuid, true);
        if (!row) throw nodeNotFound(req.uuid);
        const node = nodeFromRow(row);
        if (node.reservation !== req.reservation) throw nodeLocked(node, node.reservation);
        if (node.provision_state !== req.from) {
          throw new KilnError(
            'INVALID_STATE',
            `node ${label(node)} is in provision state '${node.provision_state}', not '${req.from}'; ` +
              'refresh it and retry the action if it still applies',
            { details: { node: node.uuid, provision_state: node.provision_state, expected: req.from } },
          );
        }
        const p = new Params();
        const ts = p.add(now());
        const sets = [
          `provision_state = ${p.add(req.to)}`,
          `target_provision_state = ${p.add(req.target)}`,
          `provision_updated_at = ${ts}`,
          `updated_at = ${ts}`,
          ...patchSets(req.patch ?? {}, p),
        ];
        let updated: Row | undefined;
        try {
          const sql = `UPDATE nodes SET ${sets.join(', ')} WHERE uuid = ${p.add(req.uuid)} RETURNING *`;
          updated = (await c.query(sql, p.values)).rows[0];
        } catch (e) {
          throw nodeWriteError(e, req.uuid, req.patch?.name);
        }
        await insertEvent(c, {
          ...req.event,
          node_uuid: req.uuid,
          from_state: req.event.from_state ?? req.from,
          to_state: req.event.to_state ?? req.to,
        });
        return nodeFromRow(updated!);
      });
    },
  };
}

function portStore(pool: pg.Pool): PortStore {
  return {
    async create(port) {
      const address = macKey(port.address);
      try {
        const { rows } = await pool.query(
          `INSERT INTO ports (uuid, address, node_uuid, pxe_enabled, extra, created_at)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6) RETURNING *`,
          [
            port.uuid,
            address,
            port.node_uuid,
            port.pxe_enabled !== false,
            JSON.stringify(port.extra ?? {}),
            now(),
          ],
        );
        return portFromRow(rows[0]);
      } catch (e) {
        const err = pgError(e);
        if (err.code === FOREIGN_KEY_VIOLATION) throw nodeNotFound(port.node_uuid);
        if (err.code === UNIQUE_VIOLATION && err.constraint === 'ports_address_key') {
          const owner = (await pool.query('SELECT node_uuid FROM ports WHERE address = $1', [address]))
            .rows[0];
          throw new KilnError(
            'CONFLICT',
            `MAC ${address} already belongs to node ${owner?.node_uuid}; delete that port first`,
            { details: { address, node: owner?.node_uuid }, cause: e },
          );
        }
        throw conflict(e, 'ports_pkey', `a port with UUID ${port.uuid} already exists`, { uuid: port.uuid });
      }
    },

    async get(uuid) {
      const { rows } = await pool.query('SELECT * FROM ports WHERE uuid = $1', [uuid]);
      return rows[0] ? portFromRow(rows[0]) : undefined;
    },

    async getByAddress(address) {
      const { rows } = await pool.query('SELECT * FROM ports WHERE address = $1', [macKey(address)]);
      return rows[0] ? portFromRow(rows[0]) : undefined;
    },

    async list(filter = {}) {
      const p = new Params();
      const clauses: string[] = [];
      if (filter.node_uuid !== undefined) clauses.push(`node_uuid = ${p.add(filter.node_uuid)}`);
      if (filter.marker !== undefined) clauses.push(`uuid > ${p.add(filter.marker)}`);
      const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
      const { rows } = await pool.query(
        `SELECT * FROM ports ${where} ORDER BY uuid LIMIT ${p.add(limitOf(filter.limit))}`,
        p.values,
      );
      return rows.map(portFromRow);
    },

    async delete(uuid) {
      const { rowCount } = await pool.query('DELETE FROM ports WHERE uuid = $1', [uuid]);
      if (rowCount === 0) {
        throw new KilnError('NOT_FOUND', `port ${uuid} not found; list ports with 'kiln port list'`, {
          details: { port: uuid },
        });
      }
    },
  };
}

function imageStore(pool: pg.Pool): ImageStore {
  return {
    async create(img) {
      try {
        const { rows } = await pool.query(
          `INSERT INTO images (uuid, name, url, checksum_algo, checksum, format, size, image_type, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
          [
            img.uuid,
            img.name,
            img.url,
            img.checksum_algo,
            img.checksum,
            img.format,
            img.size ?? null,
            img.image_type,
            now(),
          ],
        );
        return imageFromRow(rows[0]);
      } catch (e) {
        const pk = conflict(e, 'images_pkey', `an image with UUID ${img.uuid} already exists`, {
          uuid: img.uuid,
        });
        if (pk !== e) throw pk;
        throw conflict(
          e,
          'images_name_key',
          `an image named ${img.name} already exists; choose another name`,
          {
            name: img.name,
          },
        );
      }
    },

    async get(uuid) {
      const { rows } = await pool.query('SELECT * FROM images WHERE uuid = $1', [uuid]);
      return rows[0] ? imageFromRow(rows[0]) : undefined;
    },

    async getByName(name) {
      const { rows } = await pool.query('SELECT * FROM images WHERE name = $1', [name]);
      return rows[0] ? imageFromRow(rows[0]) : undefined;
    },

    async list() {
      return (await pool.query('SELECT * FROM images ORDER BY name')).rows.map(imageFromRow);
    },

    async setUrl(uuid, url) {
      const { rowCount } = await pool.query('UPDATE images SET url = $1 WHERE uuid = $2', [url, uuid]);
      if (rowCount === 0)
        throw new KilnError('NOT_FOUND', `image ${uuid} not found; list images with 'kiln image list'`, {
          details: { image: uuid },
        });
    },

    async delete(uuid) {
      const { rowCount } = await pool.query('DELETE FROM images WHERE uuid = $1', [uuid]);
      if (rowCount === 0) {
        throw new KilnError('NOT_FOUND', `image ${uuid} not found; list images with 'kiln image list'`, {
          details: { image: uuid },
        });
      }
    },
  };
}

function eventStore(pool: pg.Pool): EventStore {
  return {
    async add(ev) {
      return inTransaction(pool, (c) => insertEvent(c, ev));
    },
    async list(nodeUuid, opts = {}) {
      // The most recent `limit` events, oldest first, so a history reads top to bottom.
      const { rows } = await pool.query(
        'SELECT * FROM (SELECT * FROM events WHERE node_uuid = $1 ORDER BY id DESC LIMIT $2) e ORDER BY id',
        [nodeUuid, limitOf(opts.limit)],
      );
      return rows.map(eventFromRow);
    },
    async listSince(afterId, opts = {}) {
      const p = new Params();
      const where = [`id > ${p.add(afterIdOf(afterId))}`];
      if (opts.node_uuid !== undefined) where.push(`node_uuid = ${p.add(opts.node_uuid)}`);
      const { rows } = await pool.query(
        `SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY id LIMIT ${p.add(limitOf(opts.limit))}`,
        p.values,
      );
      return rows.map(eventFromRow);
    },
    async lastId() {
      const { rows } = await pool.query('SELECT COALESCE(MAX(id), 0) AS id FROM events');
      return Number(rows[0].id);
    },
  };
}

function afterIdOf(id: number): number {
  if (!Number.isSafeInteger(id) || id < 0)
    throw new KilnError('VALIDATION_FAILED', `an event id must be a whole number >= 0, got ${id}`);
  return id;
}

function tokenStore(pool: pg.Pool): TokenStore {
  return {
    async create(t) {
      try {
        const { rows } = await pool.query(
          `INSERT INTO api_tokens (id, name, role, hash, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
          [t.id, t.name, t.role, t.hash, now(), isoTime(t.expires_at, 'expires_at')],
        );
        return tokenFromRow(rows[0]);
      } catch (e) {
        const err = pgError(e);
        if (err.code === UNIQUE_VIOLATION && err.constraint === 'api_tokens_name_key')
          throw tokenNameTaken(t.name);
        const pk = conflict(e, 'api_tokens_pkey', `an API token with id ${t.id} already exists`, {
          id: t.id,
        });
        if (pk !== e) throw pk;
        // The hash index: two tokens with one secret would be indistinguishable at login.
        throw conflict(
          e,
          'api_tokens_hash',
          'an API token with this secret already exists; generate a new one',
          {},
        );
      }
    },

    async getByHash(hash) {
      const { rows } = await pool.query('SELECT * FROM api_tokens WHERE hash = $1', [hash]);
      return rows[0] ? tokenFromRow(rows[0]) : undefined;
    },

    async find(idOrName) {
      // An id wins over a name: ids are what revocation prints and scripts keep.
      const { rows } = await pool.query(
        'SELECT * FROM api_tokens WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1',
        [idOrName],
      );
      return rows[0] ? tokenFromRow(rows[0]) : undefined;
    },

    async list() {
      return (await pool.query('SELECT * FROM api_tokens ORDER BY name')).rows.map(tokenFromRow);
    },

    async delete(id) {
      const { rowCount } = await pool.query('DELETE FROM api_tokens WHERE id = $1', [id]);
      if (rowCount === 0) throw tokenNotFound(id);
    },

    async touch(id, at) {
      // A token revoked meanwhile is simply not there to touch.
      await pool.query('UPDATE api_tokens SET last_used_at = $2 WHERE id = $1', [
        id,
        isoTime(at, 'last_used_at'),
      ]);
    },
  };
}

async function migrate(pool: pg.Pool, where: string): Promise<void> {
  await inTransaction(pool, async (c) => {
    // Serialise conductors starting at once against a fresh database.
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`);
    const { rows } = await c.query('SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations');
    for (const m of pendingMigrations(POSTGRES_MIGRATIONS, rows[0].v, where)) {
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        now(),
      ]);
    }
  });
}

/** Where the database is, for messages: host, port and database, never the credentials. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    const socket = u.searchParams.get('host');
    return `postgres ${u.hostname || socket || 'localhost'}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'postgres (unparsable URL)';
  }
}

export async function openPostgresStore(url: string): Promise<Store> {
  const where = describePostgresUrl(url);
  const pool = new pg.Pool({ connectionString: url });
  // An idle connection dropped by the server must not crash the conductor; the pool discards it
  // and the next query opens a fresh one (or fails with a clear error of its own).
  pool.on('error', () => undefined);
  try {
    await migrate(pool, where);
  } catch (e) {
    await pool.end().catch(() => undefined);
    if (isKilnError(e)) throw e;
    throw new KilnError(
      'CONFIG_INVALID',
      `cannot open the store at ${where}: ${(e as Error).message}; check the URL, the credentials and that the server is running`,
      { cause: e },
    );
  }
  let closed = false;
  return {
    kind: 'postgres',
    nodes: nodeStore(pool),
    ports: portStore(pool),
    images: imageStore(pool),
    events: eventStore(pool),
    tokens: tokenStore(pool),
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
