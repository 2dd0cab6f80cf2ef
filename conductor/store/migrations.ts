// Versioned schema for both store backends. Each migration is applied once, in order, inside one
// transaction together with its row in `schema_migrations`, so a crash mid-upgrade leaves the
// database at the previous version rather than half-changed. Never edit a shipped migration:
// append a new one, with the same version number in both lists.
import { KilnError } from '../../shared/errors.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'nodes, ports, images, events',
    sql: `
CREATE TABLE nodes (
  uuid TEXT PRIMARY KEY,
  name TEXT UNIQUE,
  driver TEXT NOT NULL,
  bmc_address TEXT,
  bmc_password TEXT,
  properties TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(properties)),
  extra TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extra)),
  instance_info TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(instance_info)),
  driver_internal_info TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(driver_internal_info)),
  inventory TEXT CHECK (inventory IS NULL OR json_valid(inventory)),
  provision_state TEXT NOT NULL,
  target_provision_state TEXT,
  power_state TEXT,
  last_error TEXT,
  maintenance INTEGER NOT NULL DEFAULT 0 CHECK (maintenance IN (0, 1)),
  maintenance_reason TEXT,
  reservation TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  provision_updated_at TEXT
) STRICT;
CREATE INDEX nodes_provision_state ON nodes (provision_state);
CREATE INDEX nodes_reservation ON nodes (reservation) WHERE reservation IS NOT NULL;

CREATE TABLE ports (
  uuid TEXT PRIMARY KEY,
  address TEXT NOT NULL UNIQUE,
  node_uuid TEXT NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
  pxe_enabled INTEGER NOT NULL DEFAULT 1 CHECK (pxe_enabled IN (0, 1)),
  extra TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extra)),
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX ports_node_uuid ON ports (node_uuid);

CREATE TABLE images (
  uuid TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  url TEXT NOT NULL,
  checksum_algo TEXT NOT NULL,
  checksum TEXT NOT NULL,
  format TEXT NOT NULL,
  size INTEGER,
  image_type TEXT NOT NULL,
  created_at TEXT NOT NULL
) STRICT;

-- Events are the node's history; they go with the node when it is deleted.
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  node_uuid TEXT NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
  event TEXT NOT NULL,
  actor TEXT NOT NULL,
  result TEXT NOT NULL CHECK (result IN ('ok', 'error', 'info')),
  from_state TEXT,
  to_state TEXT,
  message TEXT,
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX events_node_uuid ON events (node_uuid, id);
`,
  },
  {
    version: 2,
    name: 'api tokens',
    sql: `
-- Operator API tokens: only the SHA-256 of the secret is kept. The auth check looks tokens up by
-- hash on every request, hence the unique index on it.
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'reader')),
  hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  last_used_at TEXT
) STRICT;
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (hash);
`,
  },
];

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'nodes, ports, images, events',
    sql: `
-- COLLATE "C" on the keys we sort by: byte order, as in SQLite, whatever the database locale,
-- so keyset pagination and listing order are the same on both backends.
CREATE TABLE nodes (
  uuid TEXT COLLATE "C" PRIMARY KEY,
  name TEXT UNIQUE,
  driver TEXT NOT NULL,
  bmc_address TEXT,
  bmc_password TEXT,
  properties JSONB NOT NULL DEFAULT '{}',
  extra JSONB NOT NULL DEFAULT '{}',
  instance_info JSONB NOT NULL DEFAULT '{}',
  driver_internal_info JSONB NOT NULL DEFAULT '{}',
  inventory JSONB,
  provision_state TEXT NOT NULL,
  target_provision_state TEXT,
  power_state TEXT,
  last_error TEXT,
  maintenance BOOLEAN NOT NULL DEFAULT FALSE,
  maintenance_reason TEXT,
  reservation TEXT,
  created_at TIMESTAMPTZ NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL,
  provision_updated_at TIMESTAMPTZ
);
CREATE INDEX nodes_provision_state ON nodes (provision_state);
CREATE INDEX nodes_reservation ON nodes (reservation) WHERE reservation IS NOT NULL;

CREATE TABLE ports (
  uuid TEXT COLLATE "C" PRIMARY KEY,
  address TEXT NOT NULL UNIQUE,
  node_uuid TEXT NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
  pxe_enabled BOOLEAN NOT NULL DEFAULT TRUE,
  extra JSONB NOT NULL DEFAULT '{}',
  created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ports_node_uuid ON ports (node_uuid);

CREATE TABLE images (
  uuid TEXT PRIMARY KEY,
  name TEXT COLLATE "C" NOT NULL UNIQUE,
  url TEXT NOT NULL,
  checksum_algo TEXT NOT NULL,
  checksum TEXT NOT NULL,
  format TEXT NOT NULL,
  size BIGINT,
  image_type TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  node_uuid TEXT NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
  event TEXT NOT NULL,
  actor TEXT NOT NULL,
  result TEXT NOT NULL CHECK (result IN ('ok', 'error', 'info')),
  from_state TEXT,
  to_state TEXT,
  message TEXT,
  created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_node_uuid ON events (node_uuid, id);
`,
  },
  {
    version: 2,
    name: 'api tokens',
    sql: `
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT COLLATE "C" NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'reader')),
  hash TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ,
  last_used_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (hash);
`,
  },
];

/**
 * The migrations still to apply on a database at `current`. A database written by a newer Kiln is
 * refused: running old code against a newer schema could silently drop what the new columns mean.
 */
export function pendingMigrations(all: readonly Migration[], current: number, where: string): Migration[] {
  const latest = all.length === 0 ? 0 : all[all.length - 1]!.version;
  if (current > latest) {
    throw new KilnError(
      'CONFIG_INVALID',
      `database ${where} has schema version ${current} but this Kiln knows only up to ${latest}; ` +
        'upgrade Kiln, or point it at a database created by this version',
      { details: { schema_version: current, known_version: latest } },
    );
  }
  return all.filter((m) => m.version > current);
}
