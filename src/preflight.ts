/**
 * The preflight of `truss serve`, before the plugin socket is bound: the same checks as
 * `truss doctor` (core/preflight.ts over dataplane/linux/host-checks.ts). A missing must-have
 * stops the start (`truss: cannot start: the program 'nft' was not found: apt-get install
 * nftables`); each missing optional piece is logged once with the features it disables, and
 * those features are refused at create/connect through the returned Capabilities.
 *
 * etcd is not waited for: the agent retries, and a restart while etcd is down must still
 * work. Its TCP probe runs in the background and only logs.
 */
import type { Config } from './config.ts';
import {
  type Capabilities,
  capabilitiesFrom,
  evaluateHost,
  FEATURE_TEXT,
  startError,
  unavailable,
} from './core/preflight.ts';
import { parseStoreUrl } from './core/store-url.ts';
import { bridgeNetfilterLoaded, probeEtcd, probeHost } from './dataplane/linux/host-checks.ts';
import type { Logger } from './obs/logger.ts';

export class PreflightError extends Error {
  override readonly name = 'PreflightError';
}

export async function preflight(
  config: Config,
  log: Logger,
): Promise<{ readonly capabilities: Capabilities; readonly ms: number }> {
  const started = performance.now();
  const facts = await probeHost({
    socket: config.socket,
    stateDir: config.stateDir,
    ...(config.iptables !== undefined ? { iptables: config.iptables } : {}),
    ...(config.procSys !== undefined ? { procSys: config.procSys } : {}),
    ...(config.wireguardGo !== undefined ? { wireguardGo: config.wireguardGo } : {}),
  });
  const checks = evaluateHost(facts);
  const ms = Math.round(performance.now() - started);
  const refused = startError(checks);
  if (refused) throw new PreflightError(refused);
  for (const c of unavailable(checks)) {
    log.warn('preflight: a host piece is missing; the features it disables are refused', {
      check: c.id,
      problem: c.detail,
      fix: c.fix,
      disables: (c.features ?? []).map((f) => FEATURE_TEXT[f]),
    });
  }
  for (const c of checks.filter((x) => x.status === 'info')) log.info('preflight', { check: c.id, detail: c.detail });
  // which WireGuard encrypted cluster networks run on (kernel, or which wireguard-go and its version)
  const wg = checks.find((c) => c.id === 'wireguard' && c.status === 'ok');
  if (wg) log.info('preflight: WireGuard', { implementation: wg.detail });
  const store = parseStoreUrl(config.store);
  if (store.kind === 'etcd') {
    void probeEtcd(store.endpoints).then((e) => {
      if (e.reachable.length === 0)
        log.warn('preflight: etcd is not reachable yet; the cluster agent keeps retrying', { endpoints: e.endpoints });
    });
  }
  return { capabilities: capabilitiesFrom(checks, { br_netfilter: bridgeNetfilterLoaded(config.procSys) }), ms };
}
