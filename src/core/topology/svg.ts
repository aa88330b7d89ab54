/**
 * The topology as an SVG document (`truss topology --format svg`, the daemon's /topology.svg and
 * /topology page): one column per host, this host first; in each its networks and their
 * containers with the port policy in force; above the columns the tunnels from this host to
 * each peer, arcs labelled with their state. Pure and deterministic: a simple grid, no
 * external renderer, no clock (the model carries its time). Every text is escaped (names come
 * from users) and shortened to fit its column, the whole text in a <title> tooltip.
 *
 * CSS classes a reader (or a test) can rely on: host, self, network, container, tunnel (with
 * wireguard|vxlan and ok|stale|never|vxlan), policy; `error` on anything in error (an object in
 * error, a tunnel without a fresh handshake, a lapsed host), `drift` on what differs from the
 * intent. data-host, data-network, data-container, data-from, data-to and data-state carry ids.
 */
import type { TopoContainer, TopoHost, Topology, TopoNetwork, TopoTunnel, Trouble } from './model.ts';
import { troubled } from './model.ts';

const COL_W = 330;
const GAP = 40;
const MARGIN = 20;
const LINE = 16;
const PAD = 8;
/** characters that fit a line of a network box (12 px sans-serif, about 6.5 px a character) */
const FIT = 44;
/** the error and drift lines shown per part; the rest are counted */
const MAX_TROUBLE = 4;
const ARC_STEP = 40;

const STYLE = `
.truss-topology text { fill: #1b1b1b; white-space: pre; }
.host > rect { fill: #f5f7fa; stroke: #607080; stroke-width: 1.5; }
.host.self > rect { stroke: #1f4e8c; stroke-width: 2.5; }
.host-label { font-weight: bold; font-size: 14px; }
.network > rect { fill: #ffffff; stroke: #8a9aa9; }
.network-label { font-weight: bold; }
.policy, .muted { fill: #555555; }
.truss-topology .error > rect { fill: #ffebee; stroke: #c62828; stroke-width: 2.5; }
.truss-topology .drift > rect { fill: #fff3e0; stroke: #ef6c00; stroke-width: 2.5; }
.truss-topology text.error, .container.error > text { fill: #c62828; }
.truss-topology text.drift, .container.drift > text { fill: #b34700; }
.tunnel > path { fill: none; stroke-width: 3; }
.tunnel > text { paint-order: stroke; stroke: #ffffff; stroke-width: 5px; stroke-linejoin: round; }
.tunnel.ok > path { stroke: #2e7d32; }
.tunnel.vxlan > path { stroke: #5c6bc0; stroke-dasharray: 2 4; }
.tunnel.error > path { stroke: #c62828; stroke-dasharray: 8 5; }
.tunnel.error > text { fill: #c62828; font-weight: bold; }
`;

/** XML 1.0's Char: tab, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD, U+10000 on (never a lone surrogate). */
const isXmlChar = (cp: number): boolean =>
  cp === 0x9 ||
  cp === 0xa ||
  cp === 0xd ||
  (cp >= 0x20 && cp <= 0xd7ff) ||
  (cp >= 0xe000 && cp <= 0xfffd) ||
  cp >= 0x10000;

/** XML text or attribute: the five specials escaped, what XML 1.0 may not hold dropped. */
export function escapeXml(s: string): string {
  return [...s]
    .filter((ch) => isXmlChar(ch.codePointAt(0) ?? 0))
    .join('')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** At most `n` characters (code points), an ellipsis when cut. */
export function fit(s: string, n = FIT): string {
  const chars = [...s];
  return chars.length <= n ? s : `${chars.slice(0, n - 1).join('')}…`;
}

const attrs = (a: Readonly<Record<string, string | number | undefined>>): string =>
  Object.entries(a)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => ` ${k}="${escapeXml(String(v))}"`)
    .join('');

const cls = (...names: (string | false | undefined)[]): string => names.filter(Boolean).join(' ');
const troubleClass = (t: Trouble): string | undefined =>
  t.errors.length > 0 ? 'error' : t.drift.length > 0 ? 'drift' : undefined;

/** One line of text, shortened to fit, its whole text as a tooltip when cut. */
function text(x: number, y: number, s: string, className?: string, width = FIT, anchor?: 'middle'): string {
  const shown = fit(s, width);
  const title = shown === s ? '' : `<title>${escapeXml(s)}</title>`;
  return `<text${attrs({ x, y, class: className, 'text-anchor': anchor })}>${title}${escapeXml(shown)}</text>`;
}

/** A block of lines laid out top-down: its height and its markup at (x, y). */
interface Block {
  readonly height: number;
  render(x: number, y: number): string;
}

/**
 * `s` cut into lines of at most `width` characters, after a space where there is one (each line
 * keeps its trailing space, so the lines joined read as `s`); at most `max` lines, the last cut.
 */
export function wrap(s: string, width: number, max: number): string[] {
  const lines: string[] = [];
  let rest = [...s];
  while (rest.length > width && lines.length < max - 1) {
    const space = rest.lastIndexOf(' ', width - 1);
    const cut = space > width / 2 ? space + 1 : width;
    lines.push(rest.slice(0, cut).join(''));
    rest = rest.slice(cut);
  }
  return [...lines, fit(rest.join(''), width)];
}

/** Errors first, then drift, each over up to 3 lines; past MAX_TROUBLE, a count. */
function troubleLines(t: Trouble, width: number): { s: string; c: string }[] {
  const all = [
    ...t.errors.map((s) => ({ s: `error: ${s}`, c: 'error' })),
    ...t.drift.map((s) => ({ s: `drift: ${s}`, c: 'drift' })),
  ];
  const shown = all.slice(0, MAX_TROUBLE).flatMap((l) => wrap(l.s, width, 3).map((s) => ({ s, c: l.c })));
  if (all.length <= MAX_TROUBLE) return shown;
  return [...shown, { s: `… and ${all.length - MAX_TROUBLE} more`, c: all[0]?.c ?? 'error' }];
}

function containerBlock(c: TopoContainer): Block {
  const lines = [
    { s: `${c.joined ? '●' : '○'} ${c.label}  ${c.addresses.join(' ') || '-'}`, c: '' },
    ...(c.ingress ? [{ s: `  ingress: ${c.ingress}`, c: 'policy' }] : []),
    ...troubleLines(c, FIT - 4).map((l) => ({ ...l, s: `  ${l.s}` })),
  ];
  return {
    height: lines.length * LINE,
    render: (x, y) =>
      `<g${attrs({ class: cls('container', troubleClass(c)), 'data-container': c.id })}><title>${escapeXml(
        `container ${c.label} (${c.id})`,
      )}</title>${lines.map((l, i) => text(x, y + (i + 1) * LINE - 4, l.s, l.c || undefined, FIT - 2)).join('')}</g>`,
  };
}

function networkBlock(n: TopoNetwork, width: number): Block {
  const head = [
    { s: `${n.label}${n.cluster ? `  ${n.cluster}` : ''}`, c: 'network-label' },
    ...(n.subnets.length > 0 ? [{ s: n.subnets.join(' '), c: 'muted' }] : []),
    ...(n.ingress !== undefined ? [{ s: `ingress: ${n.ingress}`, c: 'policy' }] : []),
    ...(n.claims !== undefined ? [{ s: `${n.claims} address(es) claimed`, c: 'muted' }] : []),
    ...troubleLines(n, FIT),
  ];
  const containers = n.containers.map(containerBlock);
  const body = containers.reduce((h, b) => h + b.height, 0);
  const height = PAD + head.length * LINE + body + PAD;
  return {
    height,
    render: (x, y) => {
      let at = y + PAD + head.length * LINE;
      const inner = containers.map((b) => {
        const out = b.render(x + PAD + 6, at);
        at += b.height;
        return out;
      });
      return `<g${attrs({ class: cls('network', troubleClass(n)), 'data-network': n.id })}><title>${escapeXml(
        `network ${n.label} (${n.id})`,
      )}</title><rect${attrs({ x, y, width, height, rx: 4 })}/>${head
        .map((l, i) => text(x + PAD, y + PAD + (i + 1) * LINE - 4, l.s, l.c))
        .join('')}${inner.join('')}</g>`;
    },
  };
}

function hostBlock(h: TopoHost): Block {
  const sub = [h.self ? 'this host' : undefined, h.address, h.lapsed ? 'lease lapsed' : undefined].filter(Boolean);
  const head = [
    { s: h.label, c: 'host-label' },
    ...(sub.length > 0 ? [{ s: sub.join(' · '), c: 'muted' }] : []),
    ...troubleLines(h, FIT + 2),
    ...(h.networks.length === 0 ? [{ s: 'no networks', c: 'muted' }] : []),
  ];
  const nets = h.networks.map((n) => networkBlock(n, COL_W - 2 * PAD));
  const height = PAD + head.length * LINE + PAD + nets.reduce((s, b) => s + b.height + PAD, 0);
  const hostErr = h.errors.length > 0 || h.lapsed;
  return {
    height,
    render: (x, y) => {
      let at = y + PAD + head.length * LINE + PAD;
      const inner = nets.map((b) => {
        const out = b.render(x + PAD, at);
        at += b.height + PAD;
        return out;
      });
      return `<g${attrs({
        class: cls('host', h.self && 'self', hostErr ? 'error' : troubleClass(h)),
        'data-host': h.label,
        'data-node-id': h.id,
      })}><title>${escapeXml(`host ${h.label}${h.id ? ` (node id ${h.id})` : ''}`)}</title><rect${attrs({
        x,
        y,
        width: COL_W,
        height,
        rx: 6,
      })}/>${head
        .map((l, i) => text(x + PAD, y + PAD + (i + 1) * LINE - 4, l.s, l.c, FIT + 2))
        .join('')}${inner.join('')}</g>`;
    },
  };
}

/** An arc from this host's column to the peer's, higher the further apart, its label at the top. */
function tunnelArc(t: TopoTunnel, fromCol: number, toCol: number, top: number, label: string): string {
  const cx = (col: number) => MARGIN + col * (COL_W + GAP) + COL_W / 2;
  const distance = Math.abs(toCol - fromCol);
  // arcs leave this host side by side, so that each can be told apart
  const x1 = cx(fromCol) + (toCol > fromCol ? 1 : -1) * Math.min(distance * 12, COL_W / 2 - 20);
  const x2 = cx(toCol);
  const apex = top - 14 - distance * ARC_STEP;
  const mid = (x1 + x2) / 2;
  const d = `M ${x1} ${top} C ${x1} ${apex} ${x2} ${apex} ${x2} ${top}`;
  const y = apex + ARC_STEP * 0.25 - 4;
  return `<g${attrs({
    class: cls('tunnel', t.kind, t.state, t.error && 'error'),
    'data-from': t.from,
    'data-to': t.to,
    'data-state': t.state,
  })}><title>${escapeXml(`${t.kind} tunnel to ${label} (${t.endpoint}): ${t.detail}`)}</title><path${attrs({
    d,
  })}/>${text(mid, y, `${label}: ${t.detail}`, undefined, 60, 'middle')}</g>`;
}

/** The SVG document (no XML declaration: it is also inlined in the /topology page). */
export function renderTopologySvg(t: Topology): string {
  const hosts = t.hosts.map(hostBlock);
  const col = new Map(t.hosts.map((h, i) => [h.id, i]));
  const spans = t.tunnels.map((x) => Math.abs((col.get(x.to) ?? 0) - (col.get(x.from) ?? 0)));
  const arcs = t.tunnels.length > 0 ? 24 + Math.max(...spans) * ARC_STEP : 0;
  const top = MARGIN + 24 + arcs;
  const tallest = Math.max(...hosts.map((b) => b.height));
  const width = MARGIN * 2 + t.hosts.length * COL_W + (t.hosts.length - 1) * GAP;
  const height = top + tallest + 44;
  const byId = new Map(t.hosts.map((h) => [h.id, h]));
  const summary = `truss topology${t.version ? ` (truss ${t.version})` : ''} as of ${t.at}: ${t.hosts.length} host(s), ${t.hosts.reduce(
    (n, h) => n + h.networks.length,
    0,
  )} network(s), ${t.tunnels.filter((x) => x.error).length} tunnel(s) in error`;
  const problems = t.hosts.filter((h) => troubled(h) || h.lapsed).length;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg"${attrs({
      class: 'truss-topology',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      'font-family': 'DejaVu Sans, Verdana, sans-serif',
      'font-size': 12,
    })}>`,
    `<title>${escapeXml(summary)}</title>`,
    `<style>${STYLE}</style>`,
    `<rect${attrs({ x: 0, y: 0, width, height, fill: '#ffffff' })}/>`,
    text(MARGIN, MARGIN + 6, summary, 'muted', 200),
    // the widest arc first: each label is drawn over the (wider) arcs that pass behind it
    `<g class="tunnels">${t.tunnels
      .map((x, i) => ({ x, i, span: spans[i] ?? 0 }))
      .sort((a, b) => b.span - a.span || a.i - b.i)
      .map(({ x }) => tunnelArc(x, col.get(x.from) ?? 0, col.get(x.to) ?? 0, top, byId.get(x.to)?.label ?? x.to))
      .join('')}</g>`,
    `<g class="hosts">${hosts.map((b, i) => b.render(MARGIN + i * (COL_W + GAP), top)).join('')}</g>`,
    text(
      MARGIN,
      top + tallest + 30,
      `● joined container  ○ not joined yet · green arc: handshake within 180 s · red dashed: stale or no handshake · red: in error · orange: drift${
        problems > 0 ? ` · ${problems} host(s) with problems` : ''
      }`,
      'muted',
      200,
    ),
    '</svg>',
    '',
  ].join('\n');
}
