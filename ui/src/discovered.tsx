// Machines that enrolled themselves on first PXE boot. Their inventory may report a BMC address,
// but an unauthenticated inventory is only a report: the enrollment credentials go to that
// address once an operator approves it here (or gives the right one).
import { useState } from 'preact/hooks';
import { api } from './api.ts';
import { fleet } from './data.ts';
import { isDiscovered, label, reportedBmc, serialOf, when } from './format.ts';
import { mayAct } from './role.ts';
import type { Node, Role } from './types.ts';
import { ErrorBox, messageOf, StatusLine, useLoad } from './widgets.tsx';

export function Discovered({ role }: { role: Role }) {
  const { data, error, reload } = useLoad(fleet, []);
  const nodes = data ? data.nodes.filter(isDiscovered) : [];
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Discovered machines
      </h1>
      <p>
        These machines booted from the network and enrolled themselves. Check each reported BMC address before
        approving it: the conductor's enrollment credentials are sent to the address you approve.
      </p>
      <ErrorBox message={error} title="Could not load the nodes" />
      {data && nodes.length === 0 ? <p>No machine awaits approval.</p> : null}
      <ul class="cards">
        {nodes.map((n) => (
          <DiscoveredCard
            key={n.uuid}
            node={n}
            macs={data?.macs.get(n.uuid) ?? []}
            role={role}
            done={reload}
          />
        ))}
      </ul>
    </section>
  );
}

function DiscoveredCard(props: { node: Node; macs: string[]; role: Role; done: () => void }) {
  const { node } = props;
  const reported = reportedBmc(node);
  const [address, setAddress] = useState(reported ?? '');
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const id = `bmc-${node.uuid}`;
  const approve = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setStatus('approving…');
    try {
      const a = address.trim();
      // The address the operator saw and approved is the one sent: never an unseen one.
      await api('POST', `/v1/nodes/${node.uuid}/bmc/approve`, a ? { address: a } : {});
      setStatus(`BMC approved for ${label(node)}; the conductor now verifies it`);
    } catch (err) {
      setStatus(null);
      setError(messageOf(err));
    }
    props.done();
  };
  return (
    <li class="card" data-node={node.uuid}>
      <h2>
        <a href={`#/nodes/${node.uuid}`}>{label(node)}</a>
      </h2>
      <dl class="kv">
        <dt>MACs</dt>
        <dd>{props.macs.join(', ') || '–'}</dd>
        <dt>Serial</dt>
        <dd>{serialOf(node) ?? '–'}</dd>
        <dt>Reported BMC</dt>
        <dd>{reported ?? 'none reported'}</dd>
        <dt>Enrolled</dt>
        <dd>{when(node.created_at)}</dd>
      </dl>
      {mayAct(props.role) ? null : (
        <p class="note">This token has the reader role: the API refuses approvals from it.</p>
      )}
      <form onSubmit={approve} class="approve">
        <label for={id}>BMC address to approve</label>
        <input id={id} name="address" value={address} onInput={(e) => setAddress(e.currentTarget.value)} />
        <button type="submit" class="primary">
          Approve BMC
        </button>
      </form>
      <ErrorBox message={error} title="Approval refused" />
      <StatusLine message={status} />
    </li>
  );
}
