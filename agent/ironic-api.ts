// The agent's side of the conductor API, request for request as IPA's ironic_api_client: version
// discovery on `GET /`, lookup and heartbeat with the microversion header capped at 1.62 / 1.68.
// A failed discovery falls back to 1.31 and is retried on the next call, as IPA does.
import type { Logger } from '../shared/log.ts';
import {
  ApiRootDocument,
  compareVersions,
  IRONIC_API,
  KILN_EXTENSIONS,
  type KilnExtension,
  type KilnProgress,
  minVersion,
  VERSION_HEADER,
} from '../shared/wire/ipa.ts';
import type { HttpClient, HttpResponse } from './http.ts';
import { AGENT_VERSION } from './version.ts';

export interface ApiInfo {
  version: string;
  /** Kiln features the conductor advertised; empty for a stock Ironic. */
  extensions: ReadonlySet<KilnExtension>;
  /** False when discovery failed and the fallback is in use. */
  discovered: boolean;
}

export interface IronicApiOptions {
  apiUrl: string;
  http: HttpClient;
  log: Logger;
  insecure?: boolean;
  globalRequestId?: string | null;
  /** ipa-ironic-api-version: skip discovery. */
  fixedVersion?: string | null;
  timeoutMs?: number;
}

export interface HeartbeatArgs {
  nodeUuid: string;
  callbackUrl: string;
  agentToken: string | null;
  verifyCa?: string | null;
  progress?: KilnProgress | null;
}

export class IronicApiClient {
  private info: ApiInfo | null = null;

  constructor(private readonly opts: IronicApiOptions) {}

  /** What discovery found so far; null until it succeeded. */
  current(): ApiInfo | null {
    return this.info;
  }

  /** The server's version and Kiln extensions; cached once discovery succeeded. */
  async apiInfo(): Promise<ApiInfo> {
    if (this.info) return this.info;
    if (this.opts.fixedVersion) {
      this.info = { version: this.opts.fixedVersion, extensions: new Set(), discovered: true };
      return this.info;
    }
    try {
      const res = await this.send('GET', '/', undefined, {});
      if (res.status !== 200) throw new Error(`GET / answered HTTP ${res.status}`);
      const doc = ApiRootDocument.parse(JSON.parse(res.text));
      const ext = new Set<KilnExtension>(
        (doc.kiln?.extensions ?? []).filter((e): e is KilnExtension =>
          (KILN_EXTENSIONS as readonly string[]).includes(e),
        ),
      );
      this.info = { version: doc.default_version.version, extensions: ext, discovered: true };
      this.opts.log.info(
        { version: this.info.version, extensions: [...ext] },
        'discovered conductor API version',
      );
      return this.info;
    } catch (err) {
      this.opts.log.warn(
        { err: String(err), fallback: IRONIC_API.fallback, api: this.opts.apiUrl },
        'API version discovery failed; using the fallback version (no agent token or version in heartbeats)',
      );
      return { version: IRONIC_API.fallback, extensions: new Set(), discovered: false };
    }
  }

  async lookup(macs: readonly string[], nodeUuid?: string | null): Promise<HttpResponse> {
    const info = await this.apiInfo();
    const q = new URLSearchParams({ addresses: macs.join(',') });
    if (nodeUuid) q.set('node_uuid', nodeUuid);
    return this.send('GET', `/v1/lookup?${q.toString()}`, undefined, {
      [VERSION_HEADER]: minVersion(info.version, IRONIC_API.maxLookup),
    });
  }

  async heartbeat(args: HeartbeatArgs): Promise<HttpResponse> {
    const info = await this.apiInfo();
    const v = info.version;
    const body: Record<string, unknown> = { callback_url: args.callbackUrl };
    if (compareVersions(v, IRONIC_API.agentToken) >= 0) body.agent_token = args.agentToken;
    if (compareVersions(v, IRONIC_API.agentVersionInHeartbeat) >= 0) body.agent_version = AGENT_VERSION;
    if (compareVersions(v, IRONIC_API.agentVerifyCa) >= 0 && args.verifyCa)
      body.agent_verify_ca = args.verifyCa;
    // Only a Kiln conductor that asked for it gets the extra member; Ironic would refuse the body.
    if (info.extensions.has('progress') && args.progress) body.kiln_progress = args.progress;
    return this.send('POST', `/v1/heartbeat/${encodeURIComponent(args.nodeUuid)}`, body, {
      [VERSION_HEADER]: minVersion(v, IRONIC_API.maxHeartbeat),
    });
  }

  private send(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    extra: Record<string, string>,
  ): Promise<HttpResponse> {
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      Accept: 'application/json',
      'User-Agent': `kiln-agent/${AGENT_VERSION}`,
      ...extra,
    };
    if (this.opts.globalRequestId) headers['X-OpenStack-Request-ID'] = this.opts.globalRequestId;
    return this.opts.http({
      method,
      url: `${this.opts.apiUrl}${path}`,
      headers,
      body,
      insecure: this.opts.insecure,
      timeoutMs: this.opts.timeoutMs ?? 30_000,
    });
  }
}

/** Ironic's error body is {"error_message": "<json string>"}; pull out the faultstring if present. */
export function ironicErrorMessage(text: string): string {
  try {
    const outer = JSON.parse(text) as { error_message?: unknown };
    if (typeof outer.error_message === 'string') {
      try {
        const inner = JSON.parse(outer.error_message) as { faultstring?: unknown };
        if (typeof inner.faultstring === 'string') return inner.faultstring;
      } catch {
        return outer.error_message;
      }
      return outer.error_message;
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.slice(0, 300);
}
