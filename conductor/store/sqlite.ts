// The SQLite store: one better-sqlite3 connection per conductor. better-sqlite3 is synchronous, so
// every method runs to completion before another starts; that alone makes each multi-statement
// operation atomic within this process, and transactions make it atomic on disk and against other
// processes sharing the file (who wait up to busy_timeout for the write lock).
import { closeSync, openSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { KilnError } from '../../shared/errors.ts';
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
import { pendingMigrations, SQLITE_MIGRATIONS } from './migrations.ts';
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

type Db = Database.Database;
type Row = Record<string, unknown>;

const BUSY_TIMEOUT_MS = 5000;

function sqliteCode(e: unknown): string | undefined {
  return e instanceof Database.SqliteError ? e.code : undefined;
}

/** Turn a UNIQUE violation into CONFLICT naming the duplicate; anything else passes through. */
function conflict(e: unknown, message: string, details: Row): unknown {
  const code = sqliteCode(e);
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new KilnError('CONFLICT', message, { details, cause: e });
  }
  return e;
}

const nameTaken = (e: unknown, name: unknown) =>
  conflict(e, `a node named ${name} already exists; choose another name`, { name });

function nodeFromRow(r: Row): NodeRecord {
  return {
    uuid: r.uuid as string,
    name: r.name as string | null,
    driver: r.driver as string,
    bmc_address: r.bmc_address as string | null,
    bmc_password: r.bmc_password as string | null,
    properties: JSON.parse(r.properties as string),
    extra: JSON.parse(r.extra as string),
    instance_info: JSON.parse(r.instance_info as string),
    driver_internal_info: JSON.parse(r.driver_internal_info as string),
    inventory: r.inventory === null ? null : JSON.parse(r.inventory as string),
    provision_state: r.provision_state as ProvisionState,
    target_provision_state: r.target_provision_state as ProvisionState | null,
    power_state: r.power_state as string | null,
    last_error: r.last_error as string | null,
    maintenance: r.maintenance === 1,
    maintenance_reason: r.maintenance_reason as string | null,
    reservation: r.reservation as string | null,
    created_at: r.created_at as string,
    updated_at: r.updated_at as string,
    provision_updated_at: r.provision_updated_at as string | null,
  };
}

function portFromRow(r: Row): PortRecord {
  return {
    uuid: r.uuid as string,
    address: r.address as string,
    node_uuid: r.node_uuid as string,
    pxe_enabled: r.pxe_enabled === 1,
    extra: JSON.parse(r.extra as string),
    created_at: r.created_at as string,
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
    size: r.size as number | null,
    image_type: r.image_type as string,
    created_at: r.created_at as string,
  };
}

function eventFromRow(r: Row): EventRecord {
  return {
    id: r.id as number,
    node_uuid: r.node_uuid as string,
    event: r.event as string,
    actor: r.actor as string,
    result: r.result as EventRecord['result'],
    from_state: r.from_state as string | null,
    to_state: r.to_state as string | null,
    message: r.message as string | null,
    created_at: r.created_at as string,
  };
}

/** SET fragments and parameters for the fields present in a patch. */
function patchSql(patch: NodePatch): { sets: string[]; params: Row } {
  const sets: string[] = [];
  const params: Row = {};
  for (const col of PATCH_COLUMNS) {
    const v = patch[col];
    if (v === undefined) continue;
    sets.push(`${col} = @p_${col}`);
    if (col === 'maintenance') params[`p_${col}`] = v ? 1 : 0;
    else if (JSON_COLUMNS.has(col)) params[`p_${col}`] = v === null ? null : JSON.stringify(v);
    else params[`p_${col}`] = v;
  }
  return { sets, params };
}

function filterSql(filter: NodeFilter): { where: string; params: Row } {
  const clauses: string[] = [];
  const params: Row = {};
  if (filter.provision_state !== undefined) {
    clauses.push('provision_state = @provision_state');
    params.provision_state = filter.provision_state;
  }
  if (filter.maintenance !== undefined) {
    clauses.push('maintenance = @maintenance');
    params.maintenance = filter.maintenance ? 1 : 0;
  }
  if (filter.driver !== undefined) {
    clauses.push('driver = @driver');
    params.driver = filter.driver;
  }
  if (filter.marker !== undefined) {
    clauses.push('uuid > @marker');
    params.marker = filter.marker;
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

function insertEvent(db: Db, ev: NewEvent): EventRecord {
  const row = {
    node_uuid: ev.node_uuid,
    event: ev.event,
    actor: ev.actor,
    result: ev.result,
    from_state: ev.from_state ?? null,
    to_state: ev.to_state ?? null,
    message: ev.message ?? null,
    created_at: now(),
  };
  try {
    const info = db
      .prepare(
        `INSERT INTO events (node_uuid, event, actor, result, from_state, to_state, message, created_at)
         VALUES (@node_uuid, @event, @actor, @result, @from_state, @to_state, @message, @created_at)`,
      )
      .run(row);
    return { id: Number(info.lastInsertRowid), ...row };
  } catch (e) {
    if (sqliteCode(e) === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw nodeNotFound(ev.node_uuid);
    throw e;
  }
}

function tokenFromRow(r: Row): ApiTokenRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    role: r.role as ApiTokenRecord['role'],
    hash: r.hash as string,
    created_at: r.created_at as string,
    expires_at: r.expires_at as string | null,
    last_used_at: r.last_used_at as string | null,
  };
}

function nodeStore(db: Db): NodeStore {
  const getRow = (uuid: string) =>
    db.prepare('SELECT * FROM nodes WHERE uuid = ?').get(uuid) as Row | undefined;
  const mustGet = (uuid: string) => {
    const row = getRow(uuid);
    if (!row) throw nodeNotFound(uuid);
    return nodeFromRow(row);
  };

  const transition = db.transaction((req: TransitionRequest): NodeRecord => {
    const node = mustGet(req.uuid);
    if (node.reservation !== req.reservation) throw nodeLocked(node, node.reservation);
    if (node.provision_state !== req.from) {
      throw new KilnError(
        'INVALID_STATE',
        `node ${label(node)} is in provision state '${node.provision_state}', not '${req.from}'; ` +
          'refresh it and retry the action if it still applies',
        { details: { node: node.uuid, provision_state: node.provision_state, expected: req.from } },
      );
    }
    const ts = now();
    const { sets, params } = patchSql(req.patch ?? {});
    try {
      db.prepare(
        `UPDATE nodes SET provision_state = @to, target_provision_state = @target,
           provision_updated_at = @ts, updated_at = @ts${sets.map((s) => `, ${s}`).join('')}
         WHERE uuid = @uuid`,
      ).run({ ...params, to: req.to, target: req.target, ts, uuid: req.uuid });
    } catch (e) {
      throw nameTaken(e, req.patch?.name);
    }
    insertEvent(db, {
      ...req.event,
      node_uuid: req.uuid,
      from_state: req.event.from_state ?? req.from,
      to_state: req.event.to_state ?? req.to,
    });
    return mustGet(req.uuid);
  });

  // One transaction so the holder named in NODE_LOCKED is the one that beat us, even when another
  // process shares the file.
  const reserve = db.transaction((uuid: string, holder: string): NodeRecord => {
    const taken = db
      .prepare('UPDATE nodes SET reservation = ? WHERE uuid = ? AND reservation IS NULL')
      .run(holder, uuid).changes;
    const node = mustGet(uuid);
    if (taken === 0) throw nodeLocked(node, node.reservation);
    return node;
  });

  return {
    async create(n: NewNode) {
      const ts = now();
      try {
        db.prepare(
          `INSERT INTO nodes (uuid, name, driver, bmc_address, bmc_password, properties, extra, instance_info,
             driver_internal_info, inventory, provision_state, power_state, created_at, updated_at)
           VALUES (@uuid, @name, @driver, @bmc_address, @bmc_password, @properties, @extra, @instance_info,
             @driver_internal_info, @inventory, @provision_state, @power_state, @ts, @ts)`,
        ).run({
          uuid: n.uuid,
          name: n.name ?? null,
          driver: n.driver,
          bmc_address: n.bmc_address ?? null,
          bmc_password: n.bmc_password ?? null,
          properties: JSON.stringify(n.properties ?? {}),
          extra: JSON.stringify(n.extra ?? {}),
          instance_info: JSON.stringify(n.instance_info ?? {}),
          driver_internal_info: JSON.stringify(n.driver_internal_info ?? {}),
          inventory: n.inventory == null ? null : JSON.stringify(n.inventory),
          provision_state: n.provision_state ?? 'enroll',
          power_state: n.power_state ?? null,
          ts,
        });
      } catch (e) {
        if (sqliteCode(e) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw conflict(e, `a node with UUID ${n.uuid} already exists`, { uuid: n.uuid });
        }
        throw nameTaken(e, n.name);
      }
      return mustGet(n.uuid);
    },

    async get(uuid) {
      const row = getRow(uuid);
      return row ? nodeFromRow(row) : undefined;
    },

    async getByName(name) {
      const row = db.prepare('SELECT * FROM nodes WHERE name = ?').get(name) as Row | undefined;
      return row ? nodeFromRow(row) : undefined;
    },

    async list(filter = {}) {
      const { where, params } = filterSql(filter);
      const rows = db
        .prepare(`SELECT * FROM nodes ${where} ORDER BY uuid LIMIT @limit`)
        .all({ ...params, limit: limitOf(filter.limit) }) as Row[];
      return rows.map(nodeFromRow);
    },

    async count(filter = {}) {
      const { where, params } = filterSql({
        provision_state: filter.provision_state,
        maintenance: filter.maintenance,
        driver: filter.driver,
      });
      return (db.prepare(`SELECT count(*) AS n FROM nodes ${where}`).get(params) as { n: number }).n;
    },

    async update(uuid, patch) {
      const { sets, params } = patchSql(patch);
      let changes: number;
      try {
        changes = db
          .prepare(
            `UPDATE nodes SET updated_at = @ts${sets.map((s) => `, ${s}`).join('')} WHERE uuid = @uuid`,
          )
          .run({ ...params, ts: now(), uuid }).changes;
      } catch (e) {
        throw nameTaken(e, patch.name);
      }
      if (changes === 0) throw nodeNotFound(uuid);
      return mustGet(uuid);
    },

    async delete(uuid) {
      if (db.prepare('DELETE FROM nodes WHERE uuid = ?').run(uuid).changes === 0) throw nodeNotFound(uuid);
    },

    async reserve(uuid, holder) {
      return reserve(uuid, holder);
    },

    async release(uuid, holder) {
      db.prepare('UPDATE nodes SET reservation = NULL WHERE uuid = ? AND reservation = ?').run(uuid, holder);
    },

    async releaseAll(holderPrefix) {
      if (holderPrefix === '') {
        throw new KilnError(
          'VALIDATION_FAILED',
          'releaseAll needs a non-empty holder prefix; it would free every lock',
        );
      }
      // substr() rather than LIKE: a prefix containing % or _ must match literally.
      return db
        .prepare('UPDATE nodes SET reservation = NULL WHERE substr(reservation, 1, length(@p)) = @p')
        .run({ p: holderPrefix }).changes;
    },

    async transition(req) {
      return transition(req);
    },
  };
}

function portStore(db: Db): PortStore {
  const getRow = (uuid: string) =>
    db.prepare('SELECT * FROM ports WHERE uuid = ?').get(uuid) as Row | undefined;
  return {
    async create(p) {
      const address = macKey(p.address);
      try {
        db.prepare(
          `INSERT INTO ports (uuid, address, node_uuid, pxe_enabled, extra, created_at)
           VALUES (?, ?, ?, ?, ?, ?)`,
        ).run(
          p.uuid,
          address,
          p.node_uuid,
          p.pxe_enabled === false ? 0 : 1,
          JSON.stringify(p.extra ?? {}),
          now(),
        );
      } catch (e) {
        const code = sqliteCode(e);
        if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw nodeNotFound(p.node_uuid);
        if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw conflict(e, `a port with UUID ${p.uuid} already exists`, { uuid: p.uuid });
        }
        const owner = db.prepare('SELECT node_uuid FROM ports WHERE address = ?').get(address) as
          | Row
          | undefined;
        throw conflict(
          e,
          `MAC ${address} already belongs to node ${owner?.node_uuid}; delete that port first`,
          {
            address,
            node: owner?.node_uuid,
          },
        );
      }
      return portFromRow(getRow(p.uuid)!);
    },

    async get(uuid) {
      const row = getRow(uuid);
      return row ? portFromRow(row) : undefined;
    },

    async getByAddress(address) {
      const row = db.prepare('SELECT * FROM ports WHERE address = ?').get(macKey(address)) as Row | undefined;
      return row ? portFromRow(row) : undefined;
    },

    async list(filter = {}) {
      const clauses: string[] = [];
      const params: Row = { limit: limitOf(filter.limit) };
      if (filter.node_uuid !== undefined) {
        clauses.push('node_uuid = @node_uuid');
        params.node_uuid = filter.node_uuid;
      }
      if (filter.marker !== undefined) {
        clauses.push('uuid > @marker');
        params.marker = filter.marker;
      }
      const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
      const rows = db.prepare(`SELECT * FROM ports ${where} ORDER BY uuid LIMIT @limit`).all(params) as Row[];
      return rows.map(portFromRow);
    },

    async delete(uuid) {
      if (db.prepare('DELETE FROM ports WHERE uuid = ?').run(uuid).changes === 0) {
        throw new KilnError('NOT_FOUND', `port ${uuid} not found; list ports with 'kiln port list'`, {
          details: { port: uuid },
        });
      }
    },
  };
}

function imageStore(db: Db): ImageStore {
  const getRow = (uuid: string) =>
    db.prepare('SELECT * FROM images WHERE uuid = ?').get(uuid) as Row | undefined;
  return {
    async create(img) {
      try {
        db.prepare(
          `INSERT INTO images (uuid, name, url, checksum_algo, checksum, format, size, image_type, created_at)
           VALUES (@uuid, @name, @url, @checksum_algo, @checksum, @format, @size, @image_type, @created_at)`,
        ).run({ ...img, size: img.size ?? null, created_at: now() });
      } catch (e) {
        if (sqliteCode(e) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw conflict(e, `an image with UUID ${img.uuid} already exists`, { uuid: img.uuid });
        }
        throw conflict(e, `an image named ${img.name} already exists; choose another name`, {
          name: img.name,
        });
      }
      return imageFromRow(getRow(img.uuid)!);
    },

    async get(uuid) {
      const row = getRow(uuid);
      return row ? imageFromRow(row) : undefined;
    },

    async getByName(name) {
      const row = db.prepare('SELECT * FROM images WHERE name = ?').get(name) as Row | undefined;
      return row ? imageFromRow(row) : undefined;
    },

    async list() {
      return (db.prepare('SELECT * FROM images ORDER BY name').all() as Row[]).map(imageFromRow);
    },

    async setUrl(uuid, url) {
      if (db.prepare('UPDATE images SET url = ? WHERE uuid = ?').run(url, uuid).changes === 0)
        throw new KilnError('NOT_FOUND', `image ${uuid} not found; list images with 'kiln image list'`, {
          details: { image: uuid },
        });
    },

    async delete(uuid) {
      if (db.prepare('DELETE FROM images WHERE uuid = ?').run(uuid).changes === 0) {
        throw new KilnError('NOT_FOUND', `image ${uuid} not found; list images with 'kiln image list'`, {
          details: { image: uuid },
        });
      }
    },
  };
}

function eventStore(db: Db): EventStore {
  return {
    async add(ev) {
      return insertEvent(db, ev);
    },
    async list(nodeUuid, opts = {}) {
      // The most recent `limit` events, oldest first, so a history reads top to bottom.
      const rows = db
        .prepare(
          `SELECT * FROM (SELECT * FROM events WHERE node_uuid = ? ORDER BY id DESC LIMIT ?) ORDER BY id`,
        )
        .all(nodeUuid, limitOf(opts.limit)) as Row[];
      return rows.map(eventFromRow);
    },
    async listSince(afterId, opts = {}) {
      // One writer at a time (SQLite's lock), so ids are committed in order.
      const params: Row = { after: afterIdOf(afterId), limit: limitOf(opts.limit) };
      if (opts.node_uuid !== undefined) params.node = opts.node_uuid;
      const rows = db
        .prepare(
          `SELECT * FROM events WHERE id > @after${opts.node_uuid !== undefined ? ' AND node_uuid = @node' : ''}
           ORDER BY id LIMIT @limit`,
        )
        .all(params) as Row[];
      return rows.map(eventFromRow);
    },
    async lastId() {
      const row = db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM events').get() as Row;
      return Number(row.id);
    },
  };
}

function afterIdOf(id: number): number {
  if (!Number.isSafeInteger(id) || id < 0)
    throw new KilnError('VALIDATION_FAILED', `an event id must be a whole number >= 0, got ${id}`);
  return id;
}

function tokenStore(db: Db): TokenStore {
  const byId = (id: string) => db.prepare('SELECT * FROM api_tokens WHERE id = ?').get(id) as Row | undefined;
  return {
    async create(t) {
      const row = {
        ...t,
        expires_at: isoTime(t.expires_at, 'expires_at'),
        created_at: now(),
      };
      try {
        db.prepare(
          `INSERT INTO api_tokens (id, name, role, hash, created_at, expires_at)
           VALUES (@id, @name, @role, @hash, @created_at, @expires_at)`,
        ).run(row);
      } catch (e) {
        if (sqliteCode(e) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw conflict(e, `an API token with id ${t.id} already exists`, { id: t.id });
        }
        if (db.prepare('SELECT 1 FROM api_tokens WHERE name = ?').get(t.name)) throw tokenNameTaken(t.name);
        // The hash index: two tokens with one secret would be indistinguishable at login.
        throw conflict(e, 'an API token with this secret already exists; generate a new one', {});
      }
      return tokenFromRow(byId(t.id)!);
    },

    async getByHash(hash) {
      const row = db.prepare('SELECT * FROM api_tokens WHERE hash = ?').get(hash) as Row | undefined;
      return row ? tokenFromRow(row) : undefined;
    },

    async find(idOrName) {
      // An id wins over a name: ids are what revocation prints and scripts keep.
      const row = (byId(idOrName) ?? db.prepare('SELECT * FROM api_tokens WHERE name = ?').get(idOrName)) as
        | Row
        | undefined;
      return row ? tokenFromRow(row) : undefined;
    },

    async list() {
      return (db.prepare('SELECT * FROM api_tokens ORDER BY name').all() as Row[]).map(tokenFromRow);
    },

    async delete(id) {
      if (db.prepare('DELETE FROM api_tokens WHERE id = ?').run(id).changes === 0) throw tokenNotFound(id);
    },

    async touch(id, at) {
      // A token revoked meanwhile is simply not there to touch.
      db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(isoTime(at, 'last_used_at'), id);
    },
  };
}

function migrate(db: Db, where: string): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT`);
  // IMMEDIATE takes the write lock before reading the version, so two conductors starting on
  // the same file cannot both decide to apply the same migration.
  db.transaction(() => {
    const { v } = db.prepare('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as {
      v: number;
    };
    for (const m of pendingMigrations(SQLITE_MIGRATIONS, v, where)) {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        now(),
      );
    }
  }).immediate();
}

const inMemory = (path: string) => path === ':memory:' || path === '';

/**
 * The database holds API token hashes, inventories and (sealed) node secrets: it is created 0600,
 * before SQLite opens it, and SQLite gives its -wal and -shm files the database file's mode. An
 * existing file that every user may read is refused rather than fixed with a warning: a warning
 * scrolls by while the file stays readable, and a silent chmod would hide that its content may
 * already have been copied. Group access is left alone (a backup group is a deliberate choice).
 */
function prepareFile(path: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw cannotOpen(path, e);
    }
    if ((mode & 0o007) !== 0) {
      const octal = mode.toString(8).padStart(4, '0');
      throw new KilnError(
        'CONFIG_INVALID',
        `SQLite database file ${file} is open to all users (mode ${octal}); it holds API token hashes and ` +
          `node data. Run 'chmod 600 ${path}*' and start again, and if others may have copied it, ` +
          'rotate the secrets key (kiln secrets rotate-key) and the BMC passwords',
        { details: { file, mode: octal } },
      );
    }
  }
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotOpen(path, e);
  }
}

function cannotOpen(path: string, e: unknown): KilnError {
  return new KilnError(
    'CONFIG_INVALID',
    `cannot open SQLite database ${path}: ${(e as Error).message}; check the path and its permissions`,
    { cause: e },
  );
}

export async function openSqliteStore(path: string): Promise<Store> {
  if (!inMemory(path)) prepareFile(path);
  let db: Db;
  try {
    db = new Database(path);
  } catch (e) {
    throw cannotOpen(path, e);
  }
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    // FULL, not NORMAL: in WAL mode NORMAL survives a killed process but can lose the last
    // commits on power loss or a kernel crash, because the WAL is only fsynced at checkpoints.
    // FULL fsyncs the WAL on every commit, so a commit that returned is on disk. The conductor
    // writes a few rows per node action, so one fsync per commit is cheap insurance.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    // Zero what an UPDATE or DELETE frees, so an old value (a replaced BMC password, a legacy
    // plain-text secret re-sealed by resealAll) does not linger in free pages of the file.
    db.pragma('secure_delete = ON');
    migrate(db, path);
  } catch (e) {
    db.close();
    throw e;
  }
  return {
    kind: 'sqlite',
    nodes: nodeStore(db),
    ports: portStore(db),
    images: imageStore(db),
    events: eventStore(db),
    tokens: tokenStore(db),
    async close() {
      if (db.open) db.close();
    },
  };
}
