// The store seam. Each aggregate has a narrow interface; SQLite implements them today and a
// PostgreSQL implementation satisfies the same contract (test/contract/store.contract.ts).
// Everything is async so that a networked database fits without changing callers.
import type { ProvisionState } from '../../shared/states.ts';

export interface NodeRecord {
  uuid: string;
  name: string | null;
  driver: string;
  bmc_address: string | null;
  /** Secret: never leaves the conductor except towards the BMC. */
  bmc_password: string | null;
  properties: Record<string, unknown>;
  extra: Record<string, unknown>;
  instance_info: Record<string, unknown>;
  /** Conductor-private bookkeeping (agent URL, token, cached steps), like Ironic's. */
  driver_internal_info: Record<string, unknown>;
  inventory: Record<string, unknown> | null;
  provision_state: ProvisionState;
  target_provision_state: ProvisionState | null;
  power_state: string | null;
  last_error: string | null;
  maintenance: boolean;
  maintenance_reason: string | null;
  reservation: string | null;
  created_at: string;
  updated_at: string;
  provision_updated_at: string | null;
}

export type NewNode = Pick<NodeRecord, 'uuid' | 'driver'> &
  Partial<
    Pick<
      NodeRecord,
      | 'name'
      | 'bmc_address'
      | 'bmc_password'
      | 'properties'
      | 'extra'
      | 'instance_info'
      | 'driver_internal_info'
      | 'inventory'
      | 'provision_state'
      | 'power_state'
    >
  >;

/** Fields a plain update may change. Provision state only moves through `transition`. */
export type NodePatch = Partial<
  Pick<
    NodeRecord,
    | 'name'
    | 'driver'
    | 'bmc_address'
    | 'bmc_password'
    | 'properties'
    | 'extra'
    | 'instance_info'
    | 'driver_internal_info'
    | 'inventory'
    | 'power_state'
    | 'last_error'
    | 'maintenance'
    | 'maintenance_reason'
  >
>;

export interface NodeFilter {
  provision_state?: ProvisionState;
  maintenance?: boolean;
  driver?: string;
  /** Return nodes whose uuid sorts after this one (keyset pagination). */
  marker?: string;
  limit?: number;
}

export interface TransitionRequest {
  uuid: string;
  /** The state the caller saw; the write fails with INVALID_STATE if the node moved meanwhile. */
  from: ProvisionState;
  to: ProvisionState;
  target: ProvisionState | null;
  /** The reservation the caller holds; the write fails with NODE_LOCKED if it doesn't. */
  reservation: string;
  /** Other fields written in the same atomic step. */
  patch?: NodePatch;
  event: NewEvent;
}

export interface NodeStore {
  create(node: NewNode): Promise<NodeRecord>;
  get(uuid: string): Promise<NodeRecord | undefined>;
  getByName(name: string): Promise<NodeRecord | undefined>;
  list(filter?: NodeFilter): Promise<NodeRecord[]>;
  count(filter?: Omit<NodeFilter, 'marker' | 'limit'>): Promise<number>;
  update(uuid: string, patch: NodePatch): Promise<NodeRecord>;
  delete(uuid: string): Promise<void>;
  /** Take the per-node lock; NODE_LOCKED if someone else holds it. */
  reserve(uuid: string, holder: string): Promise<NodeRecord>;
  /** Give the lock back; a no-op if `holder` no longer holds it. */
  release(uuid: string, holder: string): Promise<void>;
  /** Clear every lock held by `holderPrefix*` (a conductor restarting frees its own locks). */
  releaseAll(holderPrefix: string): Promise<number>;
  /** Move provision_state and record the event, all or nothing. */
  transition(req: TransitionRequest): Promise<NodeRecord>;
}

export interface PortRecord {
  uuid: string;
  address: string;
  node_uuid: string;
  pxe_enabled: boolean;
  extra: Record<string, unknown>;
  created_at: string;
}

export interface PortStore {
  create(port: Pick<PortRecord, 'uuid' | 'address' | 'node_uuid'> & Partial<PortRecord>): Promise<PortRecord>;
  get(uuid: string): Promise<PortRecord | undefined>;
  getByAddress(address: string): Promise<PortRecord | undefined>;
  list(filter?: { node_uuid?: string; limit?: number; marker?: string }): Promise<PortRecord[]>;
  delete(uuid: string): Promise<void>;
}

export interface ImageRecord {
  uuid: string;
  name: string;
  url: string;
  checksum_algo: string;
  checksum: string;
  format: string;
  size: number | null;
  image_type: string;
  created_at: string;
}

export interface ImageStore {
  create(image: Omit<ImageRecord, 'created_at'>): Promise<ImageRecord>;
  get(uuid: string): Promise<ImageRecord | undefined>;
  getByName(name: string): Promise<ImageRecord | undefined>;
  list(): Promise<ImageRecord[]>;
  /** Replace the URL as stored (re-sealing it under a new key); the image is otherwise immutable. */
  setUrl(uuid: string, url: string): Promise<void>;
  delete(uuid: string): Promise<void>;
}

export type EventResult = 'ok' | 'error' | 'info';

export interface NewEvent {
  node_uuid: string;
  event: string;
  actor: string;
  result: EventResult;
  from_state?: string | null;
  to_state?: string | null;
  message?: string | null;
}

export interface EventRecord extends Required<NewEvent> {
  id: number;
  created_at: string;
}

export interface EventStore {
  add(event: NewEvent): Promise<EventRecord>;
  list(node_uuid: string, opts?: { limit?: number }): Promise<EventRecord[]>;
  /**
   * Events with an id above `afterId`, oldest first (at most `limit`, default 1000): what a live
   * stream replays after a reconnect and polls for rows other conductors wrote. Ids are handed out
   * in commit order, so a reader that saw id n never later finds a new row below n.
   */
  listSince(afterId: number, opts?: { node_uuid?: string; limit?: number }): Promise<EventRecord[]>;
  /** The highest event id so far (0 when there is none): where a new stream starts following. */
  lastId(): Promise<number>;
}

/** Ironic's system-scope roles: admin ⊃ operator ⊃ reader. */
export type ApiRole = 'admin' | 'operator' | 'reader';

/** An operator API token. Only a hash of the secret is kept; the secret is shown once, at creation. */
export interface ApiTokenRecord {
  /** Public id (shown in lists, used to revoke). */
  id: string;
  /** Unique; what events record as the actor. */
  name: string;
  role: ApiRole;
  /** sha256 of the whole token, hex. The token carries 256 random bits, so a fast hash is enough. */
  hash: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}

export interface TokenStore {
  create(token: Omit<ApiTokenRecord, 'created_at' | 'last_used_at'>): Promise<ApiTokenRecord>;
  getByHash(hash: string): Promise<ApiTokenRecord | undefined>;
  /** By id or by name. */
  find(idOrName: string): Promise<ApiTokenRecord | undefined>;
  list(): Promise<ApiTokenRecord[]>;
  /** Revoke: the row is gone, so the token stops working at once. */
  delete(id: string): Promise<void>;
  /** Record a use (at most once a minute is enough; callers throttle). */
  touch(id: string, at: string): Promise<void>;
}

export interface Store {
  readonly kind: string;
  nodes: NodeStore;
  ports: PortStore;
  images: ImageStore;
  events: EventStore;
  tokens: TokenStore;
  close(): Promise<void>;
}
