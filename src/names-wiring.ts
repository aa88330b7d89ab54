/**
 * Composition of names across hosts (issue 16): Docker's follower, the name catalog service,
 * and truss's DNS responder, wired into the reconciler's passes. Nothing here runs on a plugin
 * request: the follower reads Docker in the background, the catalog is joined with the intent
 * once per pass, and the responder answers containers' queries.
 */
import { readFileSync } from 'node:fs';
import type { Config } from './config.ts';
import type { StatusBody } from './core/admin-api.ts';
import type { ClusterNames } from './core/contracts.ts';
import { resolve } from './core/dns/answer.ts';
import { computeUpstreams, dnsWarning, ETC_RESOLV_CONF, parseResolvConf } from './core/dns/resolv-conf.ts';
import type { Intent } from './core/intent.ts';
import type { ContainerFacts } from './core/names/catalog.ts';
import { UpstreamLearner } from './dns/learn.ts';
import { DnsResponder } from './dns/responder.ts';
import { DockerWatch } from './docker/watch.ts';
import type { Logger } from './obs/logger.ts';
import { NamesService } from './service/names-service.ts';

export interface NamesWiring {
  readonly watch: DockerWatch;
  readonly service: NamesService;
  readonly responder: DnsResponder;
  /** the intent a pass reconciles, with the catalog and the DNS redirect; the responder listens first */
  withNames(intent: Intent): Promise<Intent>;
  /** after a pass: listeners whose gateway the pass just created are bound now */
  afterPass(): void;
  /** the names section of `truss status` */
  status(): NamesBody;
  start(): void;
  stop(): Promise<void>;
}

type NamesBody = NonNullable<StatusBody['names']>;

export interface NamesWiringDeps {
  readonly log: Logger;
  /** this host's node id */
  readonly self: () => string;
  readonly cluster?: ClusterNames;
  /** the catalog changed (Docker or the other hosts): reconcile */
  readonly trigger: () => void;
  /** where the host's resolver configuration is read (tests) */
  readonly resolvConfPath?: string;
  /** the servers dns-enabled bridges queried that were not redirected (Dataplane.readDnsSeen); absent: none learnt */
  readonly readDnsSeen?: () => Promise<readonly string[]>;
}

/** dockerd's major version from "20.10.24+dfsg1" / "28.5.2"; undefined when unknown. */
export function dockerMajor(version: string | undefined): number | undefined {
  const m = /^(\d+)\./.exec(version ?? '');
  return m ? Number(m[1]) : undefined;
}

export function wireNames(config: Config, deps: NamesWiringDeps): NamesWiring {
  const log = deps.log.child({ component: 'names' });
  // a Docker event reconciles only where names matter (set by each pass's view: see NamesService)
  const watch = new DockerWatch({
    endpoint: config.dockerHost,
    log,
    onChange: () => {
      if (service.namesMatter()) deps.trigger();
    },
  });
  const path = deps.resolvConfPath ?? ETC_RESOLV_CONF;
  let resolvText = '';
  let readAt = 0;
  const hostFile = (): string => {
    // read at most once a second: passes come in bursts, the file changes rarely
    if (Date.now() - readAt > 1000) {
      readAt = Date.now();
      try {
        resolvText = readFileSync(path, 'utf8');
      } catch {
        resolvText = '';
      }
    }
    return resolvText;
  };
  const upstreams = (containers: readonly ContainerFacts[]): string[] => {
    const text = hostFile();
    const major = dockerMajor(watch.version());
    // unknown version (Docker not read yet): what any generation might send across the bridge
    const majors = major === undefined ? [20, 26, 28] : [major];
    const out = new Set<string>();
    const add = (dns: readonly string[] | undefined): void => {
      for (const m of majors) {
        const u = computeUpstreams(text, { dockerMajor: m, ipv6: true, ...(dns?.length ? { dns } : {}) });
        for (const a of u.upstreams) out.add(a);
      }
    };
    add(undefined);
    // the host's own servers as an override too: daemon.json "dns" (what docs/names.md advises on
    // dockerd 28+) sends them from the containers; redirecting a server nobody sends to costs nothing
    add(parseResolvConf(text).nameservers);
    for (const c of containers) if (c.dns.length > 0) add(c.dns);
    for (const a of learner?.learnt() ?? []) out.add(a);
    return [...out];
  };
  const read = deps.readDnsSeen;
  const learner =
    read && new UpstreamLearner({ read, active: () => service.status().dnsNetworks > 0, trigger: deps.trigger, log });
  const service = new NamesService({
    self: deps.self,
    docker: watch,
    ...(deps.cluster ? { cluster: deps.cluster } : {}),
    upstreams,
    log,
  });
  const responder = new DnsResponder({
    log: log.child({ component: 'dns' }),
    lookup: (source, q) => {
      const v = service.queryView(source);
      if (!v || v.networks.length === 0) return { kind: 'forward' };
      const networks = v.networks.map((e) => ({
        networkName: e.networkName,
        ...(e.cluster !== undefined ? { cluster: e.cluster } : {}),
      }));
      return resolve(q, { networks, endpoints: v.endpoints });
    },
  });
  let listeners: Parameters<DnsResponder['sync']>[0] = [];
  let redirected: readonly { readonly address: string; readonly port: number }[] = [];
  return {
    watch,
    service,
    responder,
    async withNames(intent) {
      const v = service.view(intent);
      listeners = v.dns.listeners;
      redirected = v.dns.upstreams;
      await responder.sync(listeners);
      const dns = v.dns.bridges.length > 0 ? { dns: { bridges: v.dns.bridges, upstreams: v.dns.upstreams } } : {};
      return { ...intent, names: v.catalog, ...dns };
    },
    afterPass() {
      const open = responder.listening().length;
      if (open < listeners.length) void responder.sync(listeners);
    },
    status() {
      const s = service.status();
      const version = watch.version();
      const c = responder.counters;
      const seen = c.answered + c.forwarded + c.failed > 0;
      const warning =
        s.dnsNetworks === 0 ? undefined : (s.dnsOff ?? dnsWarning(hostFile(), dockerMajor(version), seen));
      return {
        docker: { ...s.docker, ...(version ? { version } : {}) },
        local: s.local,
        remote: s.remote,
        ...(s.clusterSynced !== undefined ? { clusterSynced: s.clusterSynced } : {}),
        dns: {
          networks: s.dnsNetworks,
          upstreams: redirected.map((u) => ({ address: u.address, port: u.port })),
          answered: c.answered,
          forwarded: c.forwarded,
          failed: c.failed,
          ...(warning ? { warning } : {}),
        },
      };
    },
    start() {
      watch.start();
      learner?.start();
    },
    async stop() {
      learner?.stop();
      await Promise.all([watch.stop(), responder.close()]);
    },
  };
}
