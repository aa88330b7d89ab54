/**
 * Test support: reconcilers over the fake dataplane with a cluster view the test changes at
 * will (networks and view in `state`), stopped after each test by `stopAll`.
 */
import type { NetworkSpec } from '../core/model.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { type Intent, Reconciler } from './reconciler.ts';

export function clusterRig() {
  const running: Reconciler[] = [];
  return {
    /** A reconciler for these networks and cluster view (this host 198.18.255.1, WireGuard 51820, MTUs 1440/1450). */
    setup(networks: NetworkSpec[], cluster: Intent['cluster']) {
      const dp = new FakeDataplane();
      const state = { networks, cluster };
      const r = new Reconciler({
        loadIntent: async () => ({
          networks: state.networks,
          endpoints: [],
          policies: [],
          guards: [],
          revision: 1,
          ...(state.cluster !== undefined ? { cluster: state.cluster } : {}),
        }),
        dataplane: dp,
        log: silentLogger,
        resyncMs: 3_600_000,
        wireguard: { listenPort: 51820, mtu: 1440 },
        vxlan: { mtu: 1450, local: '198.18.255.1', dev: 'eth-ul' },
      });
      running.push(r);
      return { dp, r, state };
    },
    /** a reconciler the test made itself, stopped with the others */
    track(r: Reconciler): Reconciler {
      running.push(r);
      return r;
    },
    stopAll: async (): Promise<void> => {
      await Promise.all(running.splice(0).map((r) => r.stop()));
    },
  };
}
