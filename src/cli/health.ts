/**
 * Is truss healthy on this host, and if not, what is wrong: pure, from a status reply. What
 * `truss status` sums up in its HEALTH line and `truss status --check` prints and exits by
 * (1 = some problem, 0 = none; warnings never fail it).
 */
import type { StatusBody } from '../core/admin-api.ts';
import { age } from '../core/age.ts';
import { HANDSHAKE_STALE_S } from '../core/cluster/handshake.ts';

type Status = Pick<StatusBody, 'kernel' | 'cluster' | 'errors'> & {
  readonly reconciler?: Partial<Pick<StatusBody['reconciler'], 'objects' | 'passError'>>;
  readonly ownership?: StatusBody['ownership'];
  readonly orphans?: StatusBody['orphans'];
  readonly names?: StatusBody['names'];
};

export interface Health {
  /** each one makes `--check` fail */
  readonly problems: readonly string[];
  /** shown, never fail `--check` */
  readonly warnings: readonly string[];
}

export { HANDSHAKE_STALE_S };

/** The objects of the reconciler in state error, oldest failure first. */
export function objectsInError(s: Pick<Status, 'reconciler'>) {
  return Object.entries(s.reconciler?.objects ?? {})
    .filter(([, o]) => o.state === 'error')
    .map(([key, o]) => ({ key, ...o, since: o.since ?? o.updatedAt }))
    .sort((a, b) => (a.since < b.since ? -1 : a.since > b.since ? 1 : a.key < b.key ? -1 : 1));
}

export { age };
/** "12 s", "4 min", "3 h", "2 d": how long ago `iso` was. */
export const ageSince = (iso: string, nowMs: number): string => age((nowMs - Date.parse(iso)) / 1000);

export function peerName(p: { readonly node: string; readonly name?: string | undefined }): string {
  return p.name ?? p.node;
}

export function assessHealth(s: Status, nowMs: number): Health {
  const problems: string[] = [];
  const warnings: string[] = [];
  const inError = objectsInError(s);
  for (const o of inError) {
    problems.push(`object ${o.key} in error for ${ageSince(o.since, nowMs)}: ${o.lastError ?? o.code ?? 'no message'}`);
  }
  const passError = s.reconciler?.passError;
  if (passError) problems.push(`the last reconcile pass could not run: ${passError.error}`);
  const kernelUnread = (s.errors ?? []).some((e) => e.startsWith('kernel check:'));
  if (!s.kernel.inSync && !kernelUnread) {
    problems.push(`kernel: ${s.kernel.problems.length} difference(s) from the stored intent (truss reconcile repairs)`);
  }
  for (const e of s.errors ?? []) problems.push(`status could not read ${e}`);
  problems.push(...clusterProblems(s.cluster, nowMs));
  const c = s.cluster;
  if (c) {
    const rejected = c.rejected ?? [];
    if (rejected.length > 0) {
      const alarms = rejected.filter((r) => (c.alarms ?? []).includes(r)).length;
      warnings.push(`${rejected.length} cluster record(s) rejected (${alarms} alarm(s))`);
    }
    if ((c.malformed ?? []).length > 0) warnings.push(`${c.malformed.length} malformed cluster record(s) ignored`);
    if (c.reclaim?.lastError) warnings.push(`the claim GC's last pass failed: ${c.reclaim.lastError}`);
    const unclaimed = c.reclaim?.unclaimed ?? [];
    if (unclaimed.length > 0) warnings.push(`${unclaimed.length} address(es) used here without this host's claim`);
  }
  const foreign = s.ownership?.foreign.count ?? 0;
  if (foreign > 0) warnings.push(`${foreign} truss object(s) of another state on this host`);
  const names = s.names;
  if (names?.docker.state === 'unreachable' && names.docker.reason) {
    warnings.push(`container names are off: ${names.docker.reason}`);
  }
  if (names?.dns.warning && names.dns.warning !== names.docker.reason) warnings.push(`truss DNS: ${names.dns.warning}`);
  const held = (s.orphans ?? []).filter((o) => o.held).length;
  if (held > 0) warnings.push(`${held} orphaned endpoint(s) kept: their sandbox is still a network namespace`);
  return { problems, warnings };
}

function clusterProblems(c: StatusBody['cluster'], nowMs: number): string[] {
  if (!c) return [];
  const out: string[] = [];
  const e = c.etcd;
  if (e.reachable === false) out.push(`etcd unreachable: ${e.error ?? 'no answer'}`);
  if (e.lease === 'lost') out.push("this host's etcd lease is lost (no keepalive answered): peers may drop it");
  else if (e.lease === 'none') out.push('not registered in etcd yet');
  if (e.watch === 'disconnected') out.push(`the watch of etcd is disconnected: ${e.watchError ?? 'no reason given'}`);
  if (!c.synced) out.push('not synced with etcd yet: cluster networks are not programmed');
  for (const p of c.peers) {
    const where = `${peerName(p)} (${p.endpoint ?? 'endpoint not learnt yet'})`;
    // a relayed peer's own session is only a hole-punch attempt: its traffic is fine without it
    if (p.path === 'relayed') continue;
    if (p.path === 'unreachable')
      out.push(`cluster peer ${where}: both hosts are behind NATs and no relay is up (start one host with --relay)`);
    else if (p.latestHandshake === 0) out.push(`cluster peer ${where}: no WireGuard handshake`);
    else {
      const ago = nowMs / 1000 - p.latestHandshake;
      if (ago > HANDSHAKE_STALE_S) out.push(`cluster peer ${where}: last WireGuard handshake ${age(ago)} ago`);
    }
  }
  return out;
}

/** `truss status --check`'s text: the verdict, then each problem and warning. */
export function formatHealth(h: Health): string {
  const head = h.problems.length === 0 ? 'healthy' : `unhealthy: ${h.problems.length} problem(s)`;
  const lines = [
    `${head}${h.warnings.length > 0 ? `, ${h.warnings.length} warning(s)` : ''}`,
    ...h.problems.map((p) => `  - ${p}`),
    ...h.warnings.map((w) => `  ! ${w}`),
  ];
  return `${lines.join('\n')}\n`;
}
