// The node as a ramdisk agent is shown it, as Ironic's as_dict(secure=True): lookup's `node`
// and the node sent with every agent command. The agent gets its token once (lookup's config)
// and its image and config drive in the deploy step's arguments; no view repeats a secret.
import { MASKED } from '../../shared/wire/ipa.ts';
import { maskUrl } from '../images/url-policy.ts';
import type { NodeRecord } from '../store/store.ts';

/**
 * Keys whose values are secrets, matched anywhere in the key as Ironic's mask_dict_password does,
 * plus what a Kiln node carries that is as sensitive: user data and SSH keys (config drives), and
 * signed or credentialled image links.
 */
const SECRET_KEY =
  /(pass|secret|token|configdrive|config_drive|image_url|private_key|credential|encryption_key|auth|user_data|public_keys|ssh_key|signature)/i;

/** A string that is a URL carrying credentials (user:password, or a token/signature/key parameter). */
function maskStringValue(v: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return v;
  const masked = maskUrl(v);
  return masked === '<invalid URL>' ? MASKED : masked === new URL(v).toString() ? v : masked;
}

/**
 * Mask secret-looking values the way Ironic's node sanitising (as_dict(secure=True)) does: a
 * value under a secret-named key becomes "******", and a URL anywhere keeps its origin and path
 * but loses its credentials.
 */
export function maskSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (typeof value === 'string') return maskStringValue(value);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) && v !== null && v !== undefined && v !== '' ? MASKED : maskSecrets(v);
  }
  return out;
}

/**
 * The node as an agent is shown it (lookup's `node`): Ironic's secure view. The agent gets its
 * token in `config.agent_token` once and its image and config drive in the deploy step's
 * arguments; nothing here repeats a secret.
 */
export function agentNodeView(node: NodeRecord, baseUrl: string): Record<string, unknown> {
  const secure = secureNode(node);
  return {
    uuid: node.uuid,
    properties: secure.properties,
    instance_info: secure.instance_info,
    driver_internal_info: secure.driver_internal_info,
    links: [
      { href: `${baseUrl}/v1/nodes/${node.uuid}`, rel: 'self' },
      { href: `${baseUrl}/nodes/${node.uuid}`, rel: 'bookmark' },
    ],
  };
}

/**
 * The whole node with its secrets masked (the BMC password gone): what agent commands carry as
 * `node`, as Ironic sends `task.node.as_dict(secure=True)`.
 */
export function secureNode(node: NodeRecord): Omit<NodeRecord, 'bmc_password'> {
  const { bmc_password: _p, ...rest } = node;
  const { image_url: _u, configdrive: _c, ...instance } = node.instance_info;
  const instanceInfo = maskSecrets(instance) as Record<string, unknown>;
  if (node.instance_info.image_url !== undefined) instanceInfo.image_url = MASKED;
  if (node.instance_info.configdrive !== undefined) instanceInfo.configdrive = MASKED;
  const { agent_secret_token: token, ...internal } = node.driver_internal_info;
  const internalInfo = maskSecrets(internal) as Record<string, unknown>;
  if (token !== undefined) internalInfo.agent_secret_token = MASKED;
  return {
    ...rest,
    properties: maskSecrets(node.properties) as Record<string, unknown>,
    extra: maskSecrets(node.extra) as Record<string, unknown>,
    instance_info: instanceInfo,
    driver_internal_info: internalInfo,
    inventory: node.inventory,
  };
}
