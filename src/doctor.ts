/**
 * The composition root of `truss doctor`, beside main.ts (`truss serve`): doctor runs without
 * a daemon (it diagnoses why one would not start), so it wires the probes itself. The host
 * probes (dataplane/linux/host-checks.ts) and the ownership facts (the instance lock, the state
 * id in state.db, the truss links) are read here, read-only; core/ judges them; cli/doctor.ts
 * parses the command line and formats.
 */
import type { Config } from './config.ts';
import { adminSocketCheck, clockSkewCheck } from './core/doctor-checks.ts';
import { ownershipChecks } from './core/ownership-checks.ts';
import { type Check, evaluateHost } from './core/preflight.ts';
import { parseStoreUrl } from './core/store-url.ts';
import { probeAdminSocket, probeEtcdClock } from './dataplane/linux/doctor-probes.ts';
import { createExec } from './dataplane/linux/exec.ts';
import { probeHost } from './dataplane/linux/host-checks.ts';
import { listOwnedLinks } from './dataplane/linux/links.ts';
import { readInstanceLock } from './obs/instance-lock.ts';
import { STATE_ID_KEY } from './service/state-id.ts';
import { peekSqliteValue } from './store/sqlite-peek.ts';

/** The state identity stored in `<stateDir>/state.db`; undefined when there is none (yet) or it does not read. */
function peekStateIdentity(stateDir: string): { stateId: string; adoptUnstamped: boolean } | undefined {
  const value = peekSqliteValue(stateDir, STATE_ID_KEY);
  if (value === undefined) return undefined;
  try {
    const v = JSON.parse(value) as { stateId?: unknown; adoptUnstamped?: unknown };
    return typeof v.stateId === 'string'
      ? { stateId: v.stateId, adoptUnstamped: v.adoptUnstamped === true }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Every check `truss doctor` shows, for what `truss serve` with `config` would meet. */
export async function diagnose(config: Config): Promise<Check[]> {
  const store = parseStoreUrl(config.store);
  const facts = await probeHost({
    socket: config.socket,
    stateDir: config.stateDir,
    ...(config.iptables !== undefined ? { iptables: config.iptables } : {}),
    ...(config.procSys !== undefined ? { procSys: config.procSys } : {}),
    ...(config.wireguardGo !== undefined ? { wireguardGo: config.wireguardGo } : {}),
    ...(store.kind === 'etcd' ? { etcdEndpoints: store.endpoints } : {}),
  });
  const running = await readInstanceLock();
  const identity = peekStateIdentity(config.stateDir);
  const links = await listOwnedLinks(createExec()).catch(() => undefined);
  const admin = await probeAdminSocket(config.stateDir);
  // etcd's clock, from the first endpoint that accepted a connection
  const etcd = facts.etcd?.reachable[0];
  const clock = etcd
    ? await probeEtcdClock({ endpoint: etcd, ...(config.etcdTls ? { tls: config.etcdTls } : {}) })
    : undefined;
  return [
    ...evaluateHost(facts),
    ...(clock ? [clockSkewCheck(clock)] : []),
    ...ownershipChecks({ stateDir: config.stateDir, running, identity, links }),
    adminSocketCheck(admin),
  ];
}
