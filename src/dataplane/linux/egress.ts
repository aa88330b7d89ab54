/**
 * Policy routing for truss.egress.via (core/egress.ts): `ip rule`s and routes in reserved tables.
 *
 * Ownership: every rule and route truss makes here carries protocol TRUSS_ROUTE_PROTO (116);
 * routes are only ever looked for in truss's reserved table range (core/egress.ts isEgressTable),
 * rules only among those with protocol 116. Deletes name the protocol, so the kernel itself
 * refuses to delete a foreign rule or route that looks the same. Nothing else is read or changed.
 *
 * Order, so that a network never leaks traffic out the normal way while it is programmed: the
 * table's own subnets and its `unreachable` fallback first, then the rules, then the route to the
 * next hop (the only line the kernel may refuse: a next hop not on-link anywhere); removal is
 * rules first, then the routes.
 */
import {
  EGRESS_TABLE_BASE,
  EGRESS_TABLE_SPAN,
  type EgressNetwork,
  type EgressObject,
  type EgressRoute,
  type EgressRule,
  isEgressTable,
  OPT_EGRESS_VIA,
} from '../../core/egress.ts';
import { errors } from '../../core/errors.ts';
import { type Family, formatIp, formatPrefix, isNetworkAddress, parseIp, parsePrefix } from '../../core/ip.ts';
import { shortId } from '../../core/naming.ts';
import { type Exec, isKernelError } from './exec.ts';
import { batch, checkIfName } from './links.ts';
import { TRUSS_ROUTE_PROTO } from './routes.ts';

const PROTO = String(TRUSS_ROUTE_PROTO);

export interface EgressState {
  readonly rules: readonly EgressRule[];
  readonly routes: readonly EgressRoute[];
}

interface RuleJson {
  readonly priority?: number;
  readonly src?: string;
  readonly srclen?: number;
  readonly table?: string;
  readonly protocol?: string;
}

interface RouteJson {
  readonly type?: string;
  readonly dst?: string;
  readonly gateway?: string;
  readonly dev?: string;
  readonly table?: string;
  readonly metric?: number;
}

const ALL: Record<Family, string> = { 4: '0.0.0.0/0', 6: '::/0' };
const HOST_LEN: Record<Family, number> = { 4: 32, 6: 128 };

function canonicalCidr(text: string, family: Family): string | undefined {
  if (text === 'all' || text === 'default') return ALL[family];
  const p = parsePrefix(text.includes('/') ? text : `${text}/${HOST_LEN[family]}`);
  return p && p.family === family ? formatPrefix(p) : undefined;
}

const parseJson = <T>(stdout: string): T[] => {
  const text = stdout.trim();
  const v: unknown = text === '' ? [] : JSON.parse(text);
  return Array.isArray(v) ? (v as T[]) : [];
};

/** Pure: truss's rules (protocol 116) from `ip -j [-6] rule show`. */
export function parseRulesJson(stdout: string, family: Family): EgressRule[] {
  return parseJson<RuleJson>(stdout).flatMap((r) => {
    if (r.protocol !== PROTO || typeof r.priority !== 'number' || typeof r.src !== 'string') return [];
    const from = canonicalCidr(r.srclen !== undefined ? `${r.src}/${r.srclen}` : r.src, family);
    const table = r.table === 'main' ? 'main' : Number(r.table);
    if (from === undefined || (table !== 'main' && !Number.isInteger(table))) return [];
    return [{ family, priority: r.priority, from, table }];
  });
}

/** Pure: truss's routes in the reserved tables from `ip -j [-6] route show table all proto 116`. */
export function parseEgressRoutesJson(stdout: string, family: Family): EgressRoute[] {
  return parseJson<RouteJson>(stdout).flatMap((r): EgressRoute[] => {
    const table = Number(r.table);
    const dst = typeof r.dst === 'string' ? canonicalCidr(r.dst, family) : undefined;
    if (!isEgressTable(table) || dst === undefined) return [];
    const metric = r.metric === undefined || (family === 6 && r.metric === 1024) ? undefined : r.metric;
    const via = r.gateway ? parseIp(r.gateway) : undefined;
    const base = { family, table, dst, ...(metric !== undefined ? { metric } : {}) };
    if (r.type === 'unreachable') return [{ ...base, unreachable: true }];
    if (r.type === 'throw') return [{ ...base, throw: true }];
    return [{ ...base, ...(r.dev ? { dev: r.dev } : {}), ...(via ? { via: formatIp(via) } : {}) }];
  });
}

/**
 * Every truss rule (both families) and every route in the reserved tables. `needV6` false: an IPv6
 * listing that fails (IPv6 disabled on the host) counts as empty, since nothing of ours can be there.
 */
export async function readEgress(exec: Exec, needV6 = true): Promise<EgressState> {
  const routes = ['route', 'show', 'table', 'all', 'proto', PROTO];
  const v6 = (args: string[]) =>
    exec.run('ip', args).catch((e: unknown) => {
      if (needV6) throw e;
      return { stdout: '[]', stderr: '' };
    });
  const [r4, r6, t4, t6] = await Promise.all([
    exec.run('ip', ['-j', '-4', 'rule', 'show']),
    v6(['-j', '-6', 'rule', 'show']),
    exec.run('ip', ['-j', '-4', ...routes]),
    v6(['-j', '-6', ...routes]),
  ]);
  return {
    rules: [...parseRulesJson(r4.stdout, 4), ...parseRulesJson(r6.stdout, 6)],
    routes: [...parseEgressRoutesJson(t4.stdout, 4), ...parseEgressRoutesJson(t6.stdout, 6)],
  };
}

// ---------- planning (pure) ----------

const ruleKey = (r: EgressRule): string => `${r.family} ${r.priority} ${r.from} ${r.table}`;
/** what the kernel keys a route on: table, destination, metric (type and next hop are replaced) */
const routeKey = (r: EgressRoute): string => `${r.family} ${r.table} ${r.dst} ${r.metric ?? 0}`;

/** `want.dev` absent: the kernel picks the link towards the next hop, any is fine. */
const sameRoute = (want: EgressRoute, have: EgressRoute): boolean =>
  Boolean(want.unreachable) === Boolean(have.unreachable) &&
  Boolean(want.throw) === Boolean(have.throw) &&
  want.via === have.via &&
  (want.unreachable || want.throw || want.dev === undefined || want.dev === have.dev);

function checkTable(t: number): string {
  if (!isEgressTable(t)) {
    throw errors.internal(`egress table ${t} is outside truss's range ${EGRESS_TABLE_BASE}+${EGRESS_TABLE_SPAN}`);
  }
  return String(t);
}

const metricOf = (r: EgressRoute): string => (r.metric !== undefined ? ` metric ${r.metric}` : '');

function checkCidr(text: string, family: Family): string {
  const c = canonicalCidr(text, family);
  const p = c === undefined ? undefined : parsePrefix(c);
  if (c === undefined || c !== text || !p || !isNetworkAddress(p))
    throw errors.badAddress(`egress: invalid IPv${family} CIDR ${JSON.stringify(text)}`);
  return c;
}

export function routeLine(verb: 'replace' | 'del', r: EgressRoute): string {
  const dst = checkCidr(r.dst, r.family);
  const table = checkTable(r.table);
  if (r.unreachable) return `route ${verb} unreachable ${dst} table ${table}${metricOf(r)} proto ${PROTO}`;
  // why: an IPv6 delete without a metric takes the first route of that destination, whatever its
  // metric (it could be the unreachable fallback); 1024 is the metric an IPv6 route gets by default
  const metric = r.metric === undefined && r.family === 6 ? ' metric 1024' : metricOf(r);
  if (verb === 'del') return `route del ${dst} table ${table}${metric} proto ${PROTO}`;
  if (r.throw) return `route replace throw ${dst} table ${table}${metricOf(r)} proto ${PROTO}`;
  const via = r.via !== undefined ? parseIp(r.via) : undefined;
  if (r.via !== undefined && (!via || via.family !== r.family))
    throw errors.badAddress(`egress: invalid next hop ${JSON.stringify(r.via)}`);
  const dev = r.dev !== undefined ? ` dev ${checkIfName(r.dev)}` : '';
  return `route replace ${dst}${via ? ` via ${formatIp(via)}` : ''}${dev} table ${table}${metricOf(r)} proto ${PROTO}`;
}

export function ruleLine(verb: 'add' | 'del', r: EgressRule): string {
  const from = checkCidr(r.from, r.family);
  const table = r.table === 'main' ? 'main' : checkTable(r.table);
  if (!Number.isInteger(r.priority) || r.priority < 1 || r.priority > 32765)
    throw errors.internal(`egress: rule priority ${r.priority}`);
  return `rule ${verb} from ${from} lookup ${table} priority ${r.priority} proto ${PROTO}`;
}

/** Lines for one `ip -4|-6 -batch -` (ip rule cannot guess the family of a batch line). */
export interface EgressBatch {
  readonly family: Family;
  readonly lines: readonly string[];
}

export interface EgressPlan {
  /** per network (by table id) and family: subnets and fallback, rules, then the next hop */
  readonly ensure: readonly { readonly network: EgressNetwork; readonly batches: readonly EgressBatch[] }[];
  /** per family: rules, then routes, of truss's that nothing wants */
  readonly remove: readonly EgressBatch[];
}

const FAMILIES: readonly Family[] = [4, 6];

const byFamily = (lines: readonly (readonly [Family, string])[]): EgressBatch[] =>
  FAMILIES.map((family) => ({ family, lines: lines.filter(([f]) => f === family).map(([, l]) => l) })).filter(
    (b) => b.lines.length > 0,
  );

/** Pure: what to run to make the kernel (`cur`) hold exactly `want`. */
export function planEgress(cur: EgressState, want: EgressObject): EgressPlan {
  const haveRules = new Set(cur.rules.map(ruleKey));
  const haveRoutes = new Map(cur.routes.map((r) => [routeKey(r), r]));
  const wantRules = new Set<string>();
  const wantRoutes = new Set<string>();
  const ensure = want.networks.map((network) => {
    const first: [Family, string][] = [];
    const last: [Family, string][] = [];
    for (const r of network.routes) {
      wantRoutes.add(routeKey(r));
      const have = haveRoutes.get(routeKey(r));
      if (have && sameRoute(r, have)) continue;
      (r.via !== undefined ? last : first).push([r.family, routeLine('replace', r)]);
    }
    const rules = network.rules
      .filter((r) => {
        wantRules.add(ruleKey(r));
        return !haveRules.has(ruleKey(r));
      })
      .map((r): [Family, string] => [r.family, ruleLine('add', r)]);
    return { network, batches: byFamily([...first, ...rules, ...last]) };
  });
  const remove = byFamily([
    ...cur.rules.filter((r) => !wantRules.has(ruleKey(r))).map((r): [Family, string] => [r.family, ruleLine('del', r)]),
    ...cur.routes
      .filter((r) => !wantRoutes.has(routeKey(r)))
      .map((r): [Family, string] => [r.family, routeLine('del', r)]),
  ]);
  return { ensure: ensure.filter((e) => e.batches.length > 0), remove };
}

// ---------- kernel ----------

const wantsV6 = (want: EgressObject): boolean => want.networks.some((n) => n.rules.some((r) => r.family === 6));

const ipBatch = (exec: Exec, b: EgressBatch, lines = b.lines) =>
  exec.run('ip', [`-${b.family}`, '-batch', '-'], { stdin: batch(lines) });

/** Runs a removal batch; a delete of something already gone is skipped, the rest still run. */
async function runRemovals(exec: Exec, b: EgressBatch): Promise<void> {
  let rest = [...b.lines];
  while (rest.length > 0) {
    try {
      await ipBatch(exec, b, rest);
      return;
    } catch (e) {
      const gone = isKernelError(e, 'ENOENT') || isKernelError(e, 'ESRCH');
      if (!gone || e.line === undefined) throw e;
      rest = rest.slice(e.line);
    }
  }
}

function explain(n: EgressNetwork, lines: readonly string[], e: unknown): unknown {
  const failed = isKernelError(e) && e.line !== undefined ? lines[e.line - 1] : undefined;
  if (failed?.includes(' via ')) {
    return errors.badAddress(
      `network ${shortId(n.networkId)}: next hop ${n.via.join(', ')} (${OPT_EGRESS_VIA}) is not reachable ` +
        'on a link of this host: use the address of a container on the network, or of a host on a network ' +
        `this host is directly connected to (${(e as Error).message})`,
      e,
    );
  }
  return e;
}

/**
 * Converges the kernel to `want`: each network in its own batches (a failure is reported after the
 * others are done), then the removals. Returns the lines it ran.
 */
export async function ensureEgress(exec: Exec, want: EgressObject): Promise<string[]> {
  const plan = planEgress(await readEgress(exec, wantsV6(want)), want);
  const ran: string[] = [];
  let failure: unknown;
  for (const { network, batches } of plan.ensure) {
    for (const b of batches) {
      try {
        await ipBatch(exec, b);
        ran.push(...b.lines);
      } catch (e) {
        failure ??= explain(network, b.lines, e);
      }
    }
  }
  for (const b of plan.remove) {
    await runRemovals(exec, b);
    ran.push(...b.lines);
  }
  if (failure !== undefined) throw failure;
  return ran;
}

/** Human-readable differences between the kernel and `want`; [] when it matches. */
export async function checkEgress(exec: Exec, want: EgressObject): Promise<string[]> {
  const plan = planEgress(await readEgress(exec, wantsV6(want)), want);
  return [
    ...plan.ensure.map(
      ({ network, batches }) =>
        `egress (${OPT_EGRESS_VIA}) of network ${shortId(network.networkId)}, table ${network.table}: ` +
        `${batches.reduce((n, b) => n + b.lines.length, 0)} rule(s)/route(s) missing or different`,
    ),
    ...plan.remove.flatMap((b) =>
      b.lines.map((l) => `truss ${l.split(' ')[0]} not wanted: ${l.replace(/^(rule|route) del /, '')}`),
    ),
  ];
}
