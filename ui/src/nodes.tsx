// The node list: every node with its state, power and maintenance, a live progress bar where a
// ramdisk is working, filters (state, maintenance, driver) and a search by name, UUID, MAC or serial.
import { useState } from 'preact/hooks';
import { PROVISION_STATES } from '../../shared/states.ts';
import { fleet } from './data.ts';
import { type Filters, isDiscovered, label, matches, NO_FILTERS, WORKING_STATES } from './format.ts';
import { ErrorBox, ProgressBar, useLoad } from './widgets.tsx';

const DRIVERS = ['ipmi', 'redfish', 'fake', 'none'];

export function NodeList() {
  const { data, error } = useLoad(fleet, []);
  const [f, setF] = useState<Filters>(NO_FILTERS);
  const set = (k: keyof Filters) => (e: Event) =>
    setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const shown = data ? data.nodes.filter((n) => matches(n, data.macs.get(n.uuid) ?? [], f)) : [];
  const discovered = data ? data.nodes.filter(isDiscovered).length : 0;
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Nodes
      </h1>
      <ErrorBox message={error} title="Could not load the nodes" />
      {discovered > 0 ? (
        <p class="notice">
          <a href="#/discovered">
            {discovered} discovered machine{discovered === 1 ? '' : 's'} await{discovered === 1 ? 's' : ''}{' '}
            BMC approval
          </a>
        </p>
      ) : null}
      <form class="filters" aria-label="Filter nodes" onSubmit={(e) => e.preventDefault()}>
        <label>
          State
          <select name="state" value={f.state} onChange={set('state')}>
            <option value="">any</option>
            {PROVISION_STATES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Maintenance
          <select name="maintenance" value={f.maintenance} onChange={set('maintenance')}>
            <option value="">any</option>
            <option value="true">in maintenance</option>
            <option value="false">not in maintenance</option>
          </select>
        </label>
        <label>
          Driver
          <select name="driver" value={f.driver} onChange={set('driver')}>
            <option value="">any</option>
            {DRIVERS.map((d) => (
              <option value={d}>{d}</option>
            ))}
          </select>
        </label>
        <label class="search">
          Search
          <input
            type="search"
            name="search"
            placeholder="name, UUID, MAC or serial"
            value={f.search}
            onInput={set('search')}
          />
        </label>
        {f !== NO_FILTERS ? (
          <button type="button" onClick={() => setF(NO_FILTERS)}>
            Clear filters
          </button>
        ) : null}
      </form>
      <p class="count" aria-live="polite">
        {data ? `${shown.length} of ${data.nodes.length} nodes` : 'Loading…'}
      </p>
      <table class="nodes">
        <caption class="visually-hidden">Nodes matching the filters</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">State</th>
            <th scope="col">Power</th>
            <th scope="col">Maintenance</th>
            <th scope="col">Progress</th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((n) => (
            <tr key={n.uuid} data-node={n.uuid}>
              <th scope="row">
                <a href={`#/nodes/${n.uuid}`}>{label(n)}</a>
              </th>
              <td class="state">
                <span class={`badge state-${n.provision_state.replace(/\W+/g, '-')}`}>
                  {n.provision_state}
                </span>
                {n.target_provision_state ? <span class="target"> → {n.target_provision_state}</span> : null}
              </td>
              <td>{n.power_state ?? 'unknown'}</td>
              <td>{n.maintenance ? <span class="badge warn">maintenance</span> : 'no'}</td>
              <td class="progress-cell">
                {n.progress && WORKING_STATES.includes(n.provision_state) ? (
                  <ProgressBar progress={n.progress} label={`Progress of ${label(n)}`} />
                ) : null}
              </td>
              <td class="last-error">{n.last_error ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
