/**
 * The multi-host fixture: an underlay (underlay.ts: a bridge and, unless told otherwise, one
 * etcd) and one simulated host per name on it (host.ts: dockerd and the test image; underlay
 * index 1, 2, ... in the order of `hosts`), and with `truss` each host's truss joined to the
 * underlay's etcd under its own name and underlay address. start() brings it up (the hosts at
 * once); stop() takes down whatever started, the hosts last first (a host may serve the ones
 * after it: an etcd in the first), then the underlay, and throws what failed; one failure
 * does not keep the rest running, and a second stop() has nothing left to do.
 */
import { type Host, type HostOptions, startHost } from './host.ts';
import { NETNS_PREFIX } from './paths.ts';
import { ensureDefaultStateDirMountPoint, removeDefaultStateDirMountPoint, type TrussOptions } from './truss.ts';
import { startUnderlay, type Underlay, type UnderlayOptions } from './underlay.ts';

/** truss's --default-pools on every cluster host (inside 198.18.0.0/15, clear of the cluster subnets). */
export const DEFAULT_POOLS = '198.18.128.0/17:24';

export type ClusterHostOptions = Omit<HostOptions, 'underlay'>;

export interface ClusterTrussOptions {
  /** DOCKER_PLUGIN_DEBUG=true (TrussOptions.debug): every RPC logged with its duration. */
  readonly debug?: boolean;
  /** --wg-port (truss's default when absent) */
  readonly wgPort?: number;
}

export interface ClusterOptions {
  /** the hosts' short names (truss-e2e-<name>), which are also truss's --node-name */
  readonly hosts: readonly string[];
  /** each host's options, the same for all or per host */
  readonly host?: ClusterHostOptions | ((name: string, index: number) => ClusterHostOptions);
  readonly underlay?: UnderlayOptions;
  /** start truss on every host at start(), in cluster mode on the underlay's etcd; absent: the suite starts it */
  readonly truss?: ClusterTrussOptions;
  /**
   * The suite starts truss through scripts/run.sh (TrussOptions.runScript): the fixture provides
   * the mount point /var/lib/truss for as long as the hosts run.
   */
  readonly runScript?: boolean;
}

export interface Cluster {
  /** the underlay (also after stop()); throws before start() */
  readonly underlay: Underlay;
  /** the hosts that started and are not stopped, in the order of `hosts` */
  readonly hosts: readonly Host[];
  /** the host of that short name; throws if it did not start */
  host(name: string): Host;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A host's short name: its name without the harness prefix (truss's --node-name in the fixture). */
export const nodeName = (h: Host): string => h.name.slice(NETNS_PREFIX.length);

/** truss serve arguments that join a host to the underlay's cluster store. */
export function clusterServeArgs(u: Underlay, node: string, address: string, wgPort?: number): string[] {
  // the underlay's etcd is plaintext on another (simulated) host: accepted explicitly
  const args = [
    ...['--store', `etcd://${u.etcd.endpoint}`, '--etcd-insecure'],
    ...['--node-name', node, '--advertise-address', address],
  ];
  if (wgPort !== undefined) args.push('--wg-port', String(wgPort));
  return args;
}

export function clusterFixture(opts: ClusterOptions): Cluster {
  const started = new Map<string, Host>();
  let underlay: Underlay | undefined;
  let live: Underlay | undefined;
  let madeMountPoint = false;
  const hostOptions = (name: string, i: number): ClusterHostOptions =>
    typeof opts.host === 'function' ? opts.host(name, i) : (opts.host ?? {});
  const hosts = (): Host[] => opts.hosts.flatMap((n) => started.get(n) ?? []);
  const trussOptions = (ul: Underlay, h: Host): TrussOptions => ({
    ...(opts.truss?.debug ? { debug: true } : {}),
    defaultPools: DEFAULT_POOLS,
    extraArgs: clusterServeArgs(ul, nodeName(h), h.underlayAddress as string, opts.truss?.wgPort),
  });
  return {
    get underlay() {
      if (!underlay) throw new Error('the cluster has not started');
      return underlay;
    },
    get hosts() {
      return hosts();
    },
    host(name) {
      const h = started.get(name);
      if (!h) throw new Error(`host ${name} did not start`);
      return h;
    },
    async start() {
      if (opts.runScript) madeMountPoint = ensureDefaultStateDirMountPoint();
      const ul = await startUnderlay(opts.underlay);
      underlay = ul;
      live = ul;
      const results = await Promise.allSettled(
        opts.hosts.map((n, i) => startHost(n, { ...hostOptions(n, i), underlay: { of: ul, index: i + 1 } })),
      );
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') started.set(opts.hosts[i] as string, r.value);
      });
      const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (bad) throw bad.reason;
      if (opts.truss) await Promise.all(hosts().map((h) => h.startTruss(trussOptions(ul, h))));
    },
    async stop() {
      const problems: string[] = [];
      for (const name of [...opts.hosts].reverse()) {
        const h = started.get(name);
        started.delete(name);
        await h?.stop().catch((err: Error) => problems.push(err.message));
      }
      const ul = live;
      live = undefined;
      await ul?.stop().catch((err: Error) => problems.push(err.message));
      removeDefaultStateDirMountPoint(madeMountPoint);
      madeMountPoint = false;
      if (problems.length > 0) throw new Error(`teardown: ${problems.join('; ')}`);
    },
  };
}
