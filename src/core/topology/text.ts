/**
 * The topology as a readable tree (`truss topology`, the default format): each host, this host
 * first, with its tunnel from this host and its networks, their policy and containers; what is
 * in error or drifted is marked ERROR / DRIFT on its own line. Pure; the same model as svg.ts.
 */
import type { TopoHost, Topology, TopoNetwork, TopoTunnel, Trouble } from './model.ts';

const troubleLines = (t: Trouble, indent: string): string[] => [
  ...t.errors.map((e) => `${indent}ERROR: ${e}`),
  ...t.drift.map((d) => `${indent}DRIFT: ${d}`),
];

function networkLines(n: TopoNetwork): string[] {
  const head = [n.label, n.cluster ?? '', n.subnets.join(' ')].filter(Boolean).join('  ');
  return [
    `  network ${head}`,
    ...(n.ingress !== undefined ? [`    ingress: ${n.ingress}`] : []),
    ...(n.claims !== undefined ? [`    ${n.claims} address(es) claimed`] : []),
    ...troubleLines(n, '    '),
    ...n.containers.flatMap((c) => [
      `    ${c.joined ? 'container' : 'endpoint (not joined)'} ${c.label}  ${c.addresses.join(' ') || '-'}${
        c.ingress ? `  ingress: ${c.ingress}` : ''
      }`,
      ...troubleLines(c, '      '),
    ]),
  ];
}

function tunnelLine(t: TopoTunnel | undefined): string[] {
  if (!t) return [];
  return [`  tunnel from this host: ${t.kind} to ${t.endpoint}, ${t.detail}${t.error ? '  [ERROR]' : ''}`];
}

function hostLines(h: TopoHost, tunnels: readonly TopoTunnel[]): string[] {
  const tags = [h.self ? 'this host' : '', h.id && h.id !== h.label ? `node id ${h.id}` : '', h.address ?? ''];
  return [
    `host ${h.label}${tags.some(Boolean) ? `  (${tags.filter(Boolean).join(', ')})` : ''}${h.lapsed ? '  LEASE LAPSED' : ''}`,
    ...tunnelLine(tunnels.find((t) => t.to === h.id && !h.self)),
    ...troubleLines(h, '  '),
    ...(h.networks.length === 0 ? ['  (no networks)'] : h.networks.flatMap(networkLines)),
  ];
}

export function renderTopologyText(t: Topology): string {
  const errors = t.tunnels.filter((x) => x.error).length;
  const head = `truss topology${t.version ? ` (truss ${t.version})` : ''}: ${t.hosts.length} host(s), ${
    t.tunnels.length
  } tunnel(s)${errors > 0 ? `, ${errors} in error` : ''}`;
  return `${[head, '', ...t.hosts.flatMap((h, i) => [...(i > 0 ? [''] : []), ...hostLines(h, t.tunnels)])].join('\n')}\n`;
}
