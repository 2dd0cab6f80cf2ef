// One node: its state and live progress, last_error as the API wrote it (it names the next step),
// the actions its state allows, properties, inventory summary, ports and events.
import { useRef, useState } from 'preact/hooks';
import { allowedActions, type ProvisionState } from '../../shared/states.ts';
import { api } from './api.ts';
import { bytes, label, WORKING_STATES, when } from './format.ts';
import type { LiveEvent } from './live.ts';
import { mayAct } from './role.ts';
import type { Image, Node, NodeEvent, Port, Role } from './types.ts';
import { ConfirmDialog, ErrorBox, messageOf, ProgressBar, StatusLine, useLoad } from './widgets.tsx';

/** The provision actions the console offers, in the order shown. */
const PROVISION = ['manage', 'inspect', 'provide', 'deploy', 'undeploy'] as const;
type Provision = (typeof PROVISION)[number];

interface Pending {
  title: string;
  confirm: string;
  destructive: boolean;
  run: (form: { image: string; hostname: string }) => Promise<unknown>;
  deploy?: boolean;
}

async function loadNode(ident: string) {
  const [node, ports, events] = await Promise.all([
    api<Node>('GET', `/v1/nodes/${encodeURIComponent(ident)}`),
    api<{ ports: Port[] }>('GET', `/v1/nodes/${encodeURIComponent(ident)}/ports`),
    api<{ events: NodeEvent[] }>('GET', `/v1/nodes/${encodeURIComponent(ident)}/events?limit=50`),
  ]);
  return { node, ports: ports.ports, events: events.events };
}

export function NodePage({ ident, role }: { ident: string; role: Role }) {
  // The live filter outlives renders: it reads the node's UUID (the page may be opened by name) here.
  const uuid = useRef<string | null>(null);
  const { data, error, reload } = useLoad(
    () => loadNode(ident),
    [ident],
    (e: LiveEvent | null) => !e?.node || e.node === uuid.current || e.node === ident,
  );
  uuid.current = data?.node.uuid ?? null;
  const [pending, setPending] = useState<Pending | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  if (!data)
    return (
      <section aria-labelledby="page-title">
        <h1 id="page-title" tabIndex={-1}>
          Node {ident}
        </h1>
        <ErrorBox message={error} title="Could not load the node" />
        {error ? null : <p>Loading…</p>}
      </section>
    );
  const { node, ports, events } = data;
  const path = `/v1/nodes/${node.uuid}`;
  const name = label(node);

  const start = async (what: string, f: () => Promise<unknown>) => {
    setActionError(null);
    setStatus(`${what}: sending…`);
    try {
      await f();
      setStatus(`${what}: accepted`);
    } catch (e) {
      setStatus(null);
      setActionError(messageOf(e));
    }
    reload();
  };
  const ask = (p: Pending) => {
    setActionError(null);
    setPending(p);
  };
  const provision = (target: Provision) => {
    const run = (form: { image: string; hostname: string }) =>
      api('PUT', `${path}/states/provision`, {
        target,
        ...(target === 'deploy'
          ? { image: form.image, ...(form.hostname ? { hostname: form.hostname } : {}) }
          : {}),
      });
    if (target === 'deploy')
      return ask({ title: `Deploy ${name}`, confirm: 'Deploy', destructive: true, run, deploy: true });
    if (target === 'undeploy')
      return ask({
        title: `Undeploy ${name}? Its disks are cleaned: the instance's data is lost.`,
        confirm: 'Undeploy',
        destructive: true,
        run,
      });
    return start(target, () => run({ image: '', hostname: '' }));
  };
  const power = (target: 'power on' | 'power off' | 'rebooting') => {
    const run = () => api('PUT', `${path}/states/power`, { target });
    if (target === 'power on') return start(target, run);
    return ask({
      title: target === 'rebooting' ? `Reboot ${name}?` : `Power off ${name}?`,
      confirm: target === 'rebooting' ? 'Reboot' : 'Power off',
      destructive: true,
      run,
    });
  };
  const allowed = allowedActions(node.provision_state as ProvisionState);
  const acts = mayAct(role);

  return (
    <section aria-labelledby="page-title" class="node-page">
      <p class="breadcrumb">
        <a href="#/nodes">Nodes</a> / {name}
      </p>
      <h1 id="page-title" tabIndex={-1}>
        {name}
      </h1>
      <ErrorBox message={error} title="Could not refresh the node" />
      <dl class="summary">
        <dt>State</dt>
        <dd class="node-state">
          <span class="badge">{node.provision_state}</span>
          {node.target_provision_state ? ` → ${node.target_provision_state}` : ''}
        </dd>
        <dt>Power</dt>
        <dd class="node-power">{node.power_state ?? 'unknown'}</dd>
        <dt>Maintenance</dt>
        <dd class="node-maintenance">
          {node.maintenance ? `yes${node.maintenance_reason ? `: ${node.maintenance_reason}` : ''}` : 'no'}
        </dd>
        <dt>Driver</dt>
        <dd>
          {node.driver}
          {node.bmc_address ? ` (${node.bmc_address})` : ''}
        </dd>
        <dt>UUID</dt>
        <dd>
          <code>{node.uuid}</code>
        </dd>
      </dl>
      <div aria-live="polite" class="live-progress">
        {node.progress && WORKING_STATES.includes(node.provision_state) ? (
          <ProgressBar progress={node.progress} label={`Progress of ${name}`} />
        ) : null}
      </div>
      {node.last_error ? (
        <div class="last-error-box" role="status">
          <h2>Last error</h2>
          <p class="node-last-error">{node.last_error}</p>
        </div>
      ) : null}

      {/* Shown to every role: the API decides, and a refusal shows its message. A reader is told first. */}
      <fieldset
        class={`actions${acts ? '' : ' read-only'}`}
        aria-describedby={acts ? undefined : 'reader-note'}
      >
        <legend>Actions</legend>
        {acts ? null : (
          <p id="reader-note" class="note">
            This token has the reader role: the API refuses changes from it.
          </p>
        )}
        {PROVISION.filter((a) => allowed.includes(a)).map((a) => (
          <button type="button" onClick={() => provision(a)}>
            {a[0]!.toUpperCase() + a.slice(1)}
          </button>
        ))}
        <button type="button" onClick={() => power('power on')}>
          Power on
        </button>
        <button type="button" onClick={() => power('power off')}>
          Power off
        </button>
        <button type="button" onClick={() => power('rebooting')}>
          Reboot
        </button>
        {node.maintenance ? (
          <button
            type="button"
            onClick={() => start('maintenance off', () => api('DELETE', `${path}/maintenance`))}
          >
            Maintenance off
          </button>
        ) : (
          <button
            type="button"
            onClick={() =>
              start('maintenance on', () =>
                api('PUT', `${path}/maintenance`, { reason: 'set in the console' }),
              )
            }
          >
            Maintenance on
          </button>
        )}
      </fieldset>
      <ErrorBox message={actionError} title="The action was refused" />
      <StatusLine message={status} />
      {pending ? (
        <ActionDialog
          pending={pending}
          onCancel={() => setPending(null)}
          onConfirm={(form) => {
            setPending(null);
            void start(pending.confirm, () => pending.run(form));
          }}
        />
      ) : null}

      <Inventory node={node} />
      <h2>Ports</h2>
      <table class="ports">
        <thead>
          <tr>
            <th scope="col">MAC</th>
            <th scope="col">PXE</th>
            <th scope="col">UUID</th>
          </tr>
        </thead>
        <tbody>
          {ports.map((p) => (
            <tr key={p.uuid}>
              <td>
                <code>{p.address}</code>
              </td>
              <td>{p.pxe_enabled ? 'yes' : 'no'}</td>
              <td>
                <code>{p.uuid}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Properties</h2>
      <KeyValues values={node.properties} />
      <h2>Events</h2>
      <table class="events">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Event</th>
            <th scope="col">Result</th>
            <th scope="col">State</th>
            <th scope="col">Actor</th>
            <th scope="col">Message</th>
          </tr>
        </thead>
        <tbody>
          {events
            .slice()
            .reverse()
            .map((e) => (
              <tr key={e.id} class={`result-${e.result}`}>
                <td>{when(e.created_at)}</td>
                <td>{e.event}</td>
                <td>{e.result}</td>
                <td>{e.from_state || e.to_state ? `${e.from_state ?? '–'} → ${e.to_state ?? '–'}` : ''}</td>
                <td>{e.actor}</td>
                <td>{e.message ?? ''}</td>
              </tr>
            ))}
        </tbody>
      </table>
    </section>
  );
}

function ActionDialog(props: {
  pending: Pending;
  onCancel: () => void;
  onConfirm: (form: { image: string; hostname: string }) => void;
}) {
  const { pending } = props;
  const images = useLoad(
    () => (pending.deploy ? api<{ images: Image[] }>('GET', '/v1/images') : Promise.resolve({ images: [] })),
    [pending.deploy],
    () => false,
  );
  const [image, setImage] = useState('');
  const [hostname, setHostname] = useState('');
  const list = images.data?.images ?? [];
  const chosen = image || list[0]?.name || '';
  return (
    <ConfirmDialog
      title={pending.title}
      confirmLabel={pending.confirm}
      destructive={pending.destructive}
      onCancel={props.onCancel}
      onConfirm={() => props.onConfirm({ image: chosen, hostname: hostname.trim() })}
    >
      {pending.deploy ? (
        <div class="dialog-fields">
          <ErrorBox message={images.error} title="Could not list the images" />
          <label>
            Image
            <select name="image" required value={chosen} onChange={(e) => setImage(e.currentTarget.value)}>
              {list.map((i) => (
                <option value={i.name}>
                  {i.name} ({i.format}, {i.image_type})
                </option>
              ))}
            </select>
          </label>
          <label>
            Hostname (optional)
            <input
              name="hostname"
              autocomplete="off"
              value={hostname}
              onInput={(e) => setHostname(e.currentTarget.value)}
            />
          </label>
        </div>
      ) : null}
    </ConfirmDialog>
  );
}

function KeyValues({ values }: { values: Record<string, unknown> }) {
  const keys = Object.keys(values);
  if (keys.length === 0) return <p>None.</p>;
  return (
    <dl class="kv">
      {keys.map((k) => (
        <>
          <dt>{k}</dt>
          <dd>{typeof values[k] === 'string' ? (values[k] as string) : JSON.stringify(values[k])}</dd>
        </>
      ))}
    </dl>
  );
}

/** The inventory's headline facts; the full document stays in the API (kiln node show). */
function Inventory({ node }: { node: Node }) {
  const inv = node.inventory as {
    cpu?: { model_name?: string; count?: number; architecture?: string };
    memory?: { total?: number; physical_mb?: number };
    disks?: { name?: string; size?: number; model?: string }[];
    interfaces?: { name?: string; mac_address?: string; ipv4_address?: string | null }[];
    system_vendor?: { manufacturer?: string; product_name?: string; serial_number?: string };
    bmc_address?: string;
  } | null;
  if (!inv)
    return (
      <>
        <h2>Inventory</h2>
        <p>Not inspected yet.</p>
      </>
    );
  const mem = inv.memory?.physical_mb ? inv.memory.physical_mb * 1024 * 1024 : inv.memory?.total;
  return (
    <>
      <h2>Inventory</h2>
      <dl class="kv inventory">
        <dt>System</dt>
        <dd>
          {[inv.system_vendor?.manufacturer, inv.system_vendor?.product_name].filter(Boolean).join(' ') ||
            '–'}
        </dd>
        <dt>Serial</dt>
        <dd>{inv.system_vendor?.serial_number || '–'}</dd>
        <dt>CPU</dt>
        <dd>
          {inv.cpu
            ? `${inv.cpu.count ?? '?'} × ${inv.cpu.model_name ?? 'unknown'}${inv.cpu.architecture ? ` (${inv.cpu.architecture})` : ''}`
            : '–'}
        </dd>
        <dt>Memory</dt>
        <dd>{bytes(mem)}</dd>
        <dt>Disks</dt>
        <dd>
          {(inv.disks ?? [])
            .map((d) => `${d.name ?? '?'} ${bytes(d.size)}${d.model ? ` ${d.model}` : ''}`)
            .join(', ') || '–'}
        </dd>
        <dt>NICs</dt>
        <dd>
          {(inv.interfaces ?? [])
            .map(
              (i) => `${i.name ?? '?'} ${i.mac_address ?? ''}${i.ipv4_address ? ` ${i.ipv4_address}` : ''}`,
            )
            .join(', ') || '–'}
        </dd>
        <dt>Reported BMC</dt>
        <dd>{inv.bmc_address || '–'}</dd>
      </dl>
    </>
  );
}
