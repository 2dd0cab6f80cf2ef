// Fleet-wide reads: every node (detail view, page by page) and every port, so the list can search
// by MAC (ports) and serial (inventory) without a request per node.
import { api } from './api.ts';
import type { Node, Port } from './types.ts';

const PAGE = 1000;

export async function allNodes(): Promise<Node[]> {
  const out: Node[] = [];
  let marker: string | null = null;
  do {
    const q: string = `/v1/nodes?detail=true&limit=${PAGE}${marker ? `&marker=${encodeURIComponent(marker)}` : ''}`;
    const page: { nodes: Node[]; next: string | null } = await api('GET', q);
    out.push(...page.nodes);
    marker = page.next;
  } while (marker);
  return out;
}

export async function allPorts(): Promise<Port[]> {
  const out: Port[] = [];
  let marker: string | null = null;
  for (;;) {
    const q: string = `/v1/ports?limit=${PAGE}${marker ? `&marker=${encodeURIComponent(marker)}` : ''}`;
    const page: { ports: Port[] } = await api('GET', q);
    out.push(...page.ports);
    if (page.ports.length < PAGE) return out;
    marker = page.ports.at(-1)!.uuid;
  }
}

export async function fleet(): Promise<{ nodes: Node[]; macs: Map<string, string[]> }> {
  const [nodes, ports] = await Promise.all([allNodes(), allPorts()]);
  const macs = new Map<string, string[]>();
  for (const p of ports) macs.set(p.node_uuid, [...(macs.get(p.node_uuid) ?? []), p.address]);
  return { nodes, macs };
}
