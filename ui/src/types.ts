// The REST views the console reads (the same shapes as shared/wire/api.ts; kept narrow here so the
// browser bundle pulls in no server code).

export interface Progress {
  phase?: string;
  bytes_done?: number;
  bytes_total?: number | null;
  rate_bps?: number | null;
  eta_s?: number | null;
  step?: number;
  steps?: number;
  message?: string;
  command_name?: string;
}

export interface Node {
  uuid: string;
  name: string | null;
  driver: string;
  bmc_address: string | null;
  provision_state: string;
  target_provision_state: string | null;
  power_state: string | null;
  last_error: string | null;
  maintenance: boolean;
  maintenance_reason: string | null;
  properties: Record<string, unknown>;
  instance_info: Record<string, unknown>;
  inventory: Record<string, unknown> | null;
  progress: Progress | null;
  ports: string[];
  created_at: string;
  updated_at: string;
  provision_updated_at: string | null;
}

export interface Port {
  uuid: string;
  address: string;
  node_uuid: string;
  pxe_enabled: boolean;
}

export interface Image {
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

export interface NodeEvent {
  id: number;
  event: string;
  actor: string;
  result: 'ok' | 'error' | 'info';
  from_state: string | null;
  to_state: string | null;
  message: string | null;
  created_at: string;
}

/** Who the signed-in token is, as far as the console can tell (see role.ts). */
export type Role = 'admin' | 'operator' | 'reader' | 'unknown';
