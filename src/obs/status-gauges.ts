/**
 * The metrics read at scrape time from the body `truss status` shows (docs/metrics.md): the
 * kernel's sync with the intent, objects in error, networks, endpoints, pools, the policy and
 * anti-spoofing counters (nft's own counters: they drop back when a chain is re-made, which
 * Prometheus takes as a counter reset), names across hosts (Docker's API, the names known, the
 * DNS responder's counters), and in cluster mode etcd and the WireGuard peers.
 * Each scrape replaces every value, so a network or peer that is gone leaves no series behind.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { StatusBody } from '../core/admin-api.ts';
import { hostRange, parsePrefix } from '../core/ip.ts';
import { shortId } from '../core/naming.ts';

type Labels = Record<string, string>;

/** Metrics that one scrape replaces whole: a gauge, or a counter read from the kernel's own counters. */
class Replaced {
  readonly all: { reset(): void }[] = [];
  readonly #registers: Registry[];
  constructor(registers: Registry[]) {
    this.#registers = registers;
  }
  gauge(name: string, help: string, labelNames: string[] = []): Gauge {
    return this.#track(new Gauge({ name, help, labelNames, registers: this.#registers }));
  }
  counter(name: string, help: string, labelNames: string[]): Counter {
    return this.#track(new Counter({ name, help, labelNames, registers: this.#registers }));
  }
  #track<T extends { reset(): void }>(m: T): T {
    this.all.push(m);
    return m;
  }
}

function defineStatusMetrics(m: Replaced) {
  const gauge = m.gauge.bind(m);
  const counter = m.counter.bind(m);
  return {
    statusErrors: gauge(
      'truss_status_errors',
      'Parts of the status that could not be read at this scrape (0: all were)',
    ),
    inSync: gauge('truss_kernel_in_sync', '1 when the kernel matches the stored intent (what truss status shows)'),
    problems: gauge('truss_kernel_problems', 'Differences between the kernel and the intent found at this scrape'),
    inError: gauge('truss_objects_in_error', 'Kernel objects whose last reconcile failed, by kind', ['kind']),
    networks: gauge('truss_networks', 'Networks of this host (stored intent)'),
    endpoints: gauge('truss_endpoints', 'Endpoints (container attachments) of this host, by network short id', [
      'network',
    ]),
    poolUsed: gauge('truss_ipam_pool_used_addresses', 'Addresses held in an IPAM pool (gateway, aux, endpoints)', [
      'pool',
      'address_space',
    ]),
    poolSize: gauge('truss_ipam_pool_size_addresses', 'Usable host addresses of an IPAM pool', [
      'pool',
      'address_space',
    ]),
    deniedPackets: counter('truss_policy_denied_packets_total', 'Packets port policy denied, by network', ['network']),
    deniedBytes: counter('truss_policy_denied_bytes_total', 'Bytes port policy denied, by network', ['network']),
    spoofPackets: counter('truss_antispoof_dropped_packets_total', 'Frames anti-spoofing dropped, by reason', [
      'reason',
    ]),
    spoofBytes: counter('truss_antispoof_dropped_bytes_total', 'Bytes anti-spoofing dropped, by reason', ['reason']),
  };
}

/** Names across hosts (issue 16): the `names` section of the status body. */
function defineNamesMetrics(m: Replaced) {
  return {
    dockerUp: m.gauge(
      'truss_docker_api_up',
      "1 when truss follows Docker's API (containers listed, events followed), else 0",
    ),
    names: m.gauge('truss_names', "Named endpoints known: this host's (local) and the other hosts' (remote)", [
      'source',
    ]),
    dnsQueries: m.counter(
      'truss_dns_queries_total',
      "Queries truss's DNS responder handled, by result (answered itself, forwarded upstream, failed)",
      ['result'],
    ),
  };
}

function defineClusterMetrics(m: Replaced) {
  const gauge = m.gauge.bind(m);
  return {
    etcd: gauge('truss_etcd_connected', '1 when etcd answered a read at this scrape'),
    synced: gauge('truss_cluster_synced', '1 once the cluster view has been read from etcd'),
    peers: gauge('truss_wireguard_peers', 'WireGuard peers this host should have'),
    never: gauge(
      'truss_wireguard_peers_without_handshake',
      'WireGuard peers that never completed a handshake (relayed peers not counted)',
    ),
    paths: gauge('truss_wireguard_peer_paths', 'WireGuard peers by how traffic reaches them', ['path']),
    age: gauge('truss_wireguard_peer_handshake_age_seconds', 'Seconds since the last handshake with a peer', ['peer']),
  };
}

export class StatusGauges {
  readonly #replaced: Replaced;
  readonly #g: ReturnType<typeof defineStatusMetrics>;
  readonly #names: ReturnType<typeof defineNamesMetrics>;
  readonly #cluster: ReturnType<typeof defineClusterMetrics> | undefined;

  constructor(registers: Registry[], opts: { readonly cluster: boolean; readonly version: string }) {
    this.#replaced = new Replaced(registers);
    this.#g = defineStatusMetrics(this.#replaced);
    this.#names = defineNamesMetrics(this.#replaced);
    this.#cluster = opts.cluster ? defineClusterMetrics(this.#replaced) : undefined;
    new Gauge({
      name: 'truss_build_info',
      help: 'Always 1; the labels say which truss and Node.js run',
      labelNames: ['version', 'node_version'],
      registers,
    }).set({ version: opts.version, node_version: process.versions.node }, 1);
  }

  /** Replace every value with what `status` says; `status` undefined: it could not be read at all. */
  update(status: StatusBody | undefined, etcdConnected: boolean | undefined, nowMs = Date.now()): void {
    for (const m of this.#replaced.all) m.reset();
    const g = this.#g;
    if (!status) {
      g.statusErrors.set(1);
      this.#cluster?.etcd.set(etcdConnected ? 1 : 0);
      return;
    }
    g.statusErrors.set(status.errors?.length ?? 0);
    g.inSync.set(status.kernel.inSync ? 1 : 0);
    g.problems.set(status.kernel.problems.length);
    for (const [kind, n] of countBy(Object.entries(status.reconciler.objects), ([key, o]) =>
      o.state === 'error' ? [kindOf(key), 1] : [kindOf(key), 0],
    )) {
      g.inError.set({ kind }, n);
    }
    g.networks.set(status.networks.length);
    const networkOf = new Map(status.endpoints.map((e) => [e.id, shortId(e.networkId)]));
    for (const n of status.networks) {
      g.endpoints.set({ network: shortId(n.id) }, 0);
      g.deniedPackets.inc({ network: shortId(n.id) }, 0);
      g.deniedBytes.inc({ network: shortId(n.id) }, 0);
    }
    for (const e of status.endpoints) g.endpoints.inc({ network: shortId(e.networkId) });
    for (const [id, c] of Object.entries(status.policyCounters)) {
      const network = networkOf.get(id);
      if (network === undefined) continue;
      g.deniedPackets.inc({ network }, c.packets);
      g.deniedBytes.inc({ network }, c.bytes);
    }
    for (const [reason, c] of Object.entries(status.guardCounters)) {
      g.spoofPackets.inc({ reason }, c.packets);
      g.spoofBytes.inc({ reason }, c.bytes);
    }
    this.#pools(status);
    this.#updateNames(status);
    this.#updateCluster(status, etcdConnected, nowMs);
  }

  /** A daemon without names shows only truss_docker_api_up 0 (what reset leaves an unlabelled gauge). */
  #updateNames(status: StatusBody): void {
    const n = status.names;
    if (!n) return;
    const m = this.#names;
    m.dockerUp.set(n.docker.state === 'synced' ? 1 : 0);
    m.names.set({ source: 'local' }, n.local);
    m.names.set({ source: 'remote' }, n.remote);
    // the responder's own cumulative counts: they restart from 0 with the daemon, a counter reset
    m.dnsQueries.inc({ result: 'answered' }, n.dns.answered);
    m.dnsQueries.inc({ result: 'forwarded' }, n.dns.forwarded);
    m.dnsQueries.inc({ result: 'failed' }, n.dns.failed);
  }

  #pools(status: StatusBody): void {
    const used = countBy(status.addresses, (a) => [a.poolId, 1]);
    for (const p of status.pools) {
      const labels: Labels = { pool: p.subPool ? `${p.pool} (${p.subPool})` : p.pool, address_space: p.addressSpace };
      this.#g.poolUsed.set(labels, used.get(p.id) ?? 0);
      const prefix = parsePrefix(p.pool);
      if (prefix) {
        const r = hostRange(prefix);
        this.#g.poolSize.set(labels, Number(r.last - r.first + 1n));
      }
    }
  }

  #updateCluster(status: StatusBody, etcdConnected: boolean | undefined, nowMs: number): void {
    const c = this.#cluster;
    if (!c) return;
    c.etcd.set(etcdConnected ? 1 : 0);
    const cluster = status.cluster;
    if (!cluster) return;
    c.synced.set(cluster.synced ? 1 : 0);
    c.peers.set(cluster.peers.length);
    for (const p of cluster.peers) {
      c.paths.inc({ path: p.path ?? 'direct' });
      // a relayed peer's own session is a hole-punch try: its traffic flows without it
      if (p.path === 'relayed') continue;
      if (p.latestHandshake === 0) c.never.inc();
      else c.age.set({ peer: p.name ?? p.node }, Math.max(0, nowMs / 1000 - p.latestHandshake));
    }
  }
}

/** the kind of a reconciler status key (`kind:name`, or a whole kind's name) */
const kindOf = (key: string): string => key.split(':', 1)[0] ?? key;

function countBy<T>(items: Iterable<T>, keyOf: (t: T) => [string, number]): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of items) {
    const [k, n] = keyOf(t);
    out.set(k, (out.get(k) ?? 0) + n);
  }
  return out;
}
