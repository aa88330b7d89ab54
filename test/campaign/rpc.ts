/**
 * The campaign's stand-in for dockerd: the request sequences of `docker network create/rm` and
 * `docker run --ip X` / `docker rm -f` in the shapes of test/fixtures/dockerd-28.5.jsonl (via
 * bench/scale-rpc.ts's client), each step named, and what dockerd does when a step fails
 * (libnetwork's rollback): a failed CreateEndpoint only releases the address (the driver is not
 * asked to delete the endpoint), a failed Join deletes the endpoint and releases the address,
 * Leave/DeleteEndpoint/ReleaseAddress errors are logged and the teardown goes on.
 */
import { dockerId, PluginClient } from '../../bench/scale-rpc.ts';

const NO_PORTS = { 'com.docker.network.endpoint.exposedports': [], 'com.docker.network.portmap': [] };
const GATEWAY = { RequestAddressType: 'com.docker.network.gateway' };

export interface Net {
  readonly subnet: string;
  id: string;
  poolId: string;
  gateway: string;
}

export interface Ep {
  readonly net: Net;
  readonly ip: string;
  readonly id: string;
  readonly sandboxKey: string;
}

export const EP_STEPS = [
  'RequestAddress',
  'CreateEndpoint',
  'Join',
  'Leave',
  'DeleteEndpoint',
  'ReleaseAddress',
] as const;
export type EpStep = (typeof EP_STEPS)[number];
export const NET_STEPS = [
  'RequestPool',
  'RequestGateway',
  'CreateNetwork',
  'DeleteNetwork',
  'ReleaseGateway',
  'ReleasePool',
] as const;
export type NetStep = (typeof NET_STEPS)[number];

export const newNet = (subnet: string): Net => ({ subnet, id: dockerId(), poolId: '', gateway: '' });
export const newEp = (net: Net, ip: string): Ep => ({
  net,
  ip,
  id: dockerId(),
  sandboxKey: `/var/run/docker/netns/${dockerId().slice(0, 12)}`,
});

export async function netStep(c: PluginClient, n: Net, step: NetStep): Promise<void> {
  switch (step) {
    case 'RequestPool': {
      const r = await c.call('/IpamDriver.RequestPool', {
        AddressSpace: 'TrussLocal',
        Pool: n.subnet,
        SubPool: '',
        Options: {},
        V6: false,
      });
      n.poolId = String(r.PoolID);
      return;
    }
    case 'RequestGateway': {
      const r = await c.call('/IpamDriver.RequestAddress', { PoolID: n.poolId, Address: '', Options: GATEWAY });
      n.gateway = String(r.Address);
      return;
    }
    case 'CreateNetwork':
      await c.call('/NetworkDriver.CreateNetwork', {
        NetworkID: n.id,
        Options: {
          'com.docker.network.enable_ipv4': true,
          'com.docker.network.enable_ipv6': false,
          'com.docker.network.generic': {},
        },
        IPv4Data: [{ AddressSpace: 'TrussLocal', Gateway: n.gateway, Pool: n.subnet }],
        IPv6Data: [],
      });
      return;
    case 'DeleteNetwork':
      await c.call('/NetworkDriver.DeleteNetwork', { NetworkID: n.id });
      return;
    case 'ReleaseGateway':
      await c.call('/IpamDriver.ReleaseAddress', { PoolID: n.poolId, Address: n.gateway.replace(/\/\d+$/, '') });
      return;
    case 'ReleasePool':
      await c.call('/IpamDriver.ReleasePool', { PoolID: n.poolId });
      return;
  }
}

export async function epStep(c: PluginClient, ep: Ep, step: EpStep): Promise<void> {
  const ids = { NetworkID: ep.net.id, EndpointID: ep.id };
  switch (step) {
    case 'RequestAddress':
      await c.call('/IpamDriver.RequestAddress', { PoolID: ep.net.poolId, Address: ep.ip, Options: null });
      return;
    case 'CreateEndpoint':
      await c.call('/NetworkDriver.CreateEndpoint', {
        ...ids,
        Interface: { Address: `${ep.ip}/24`, AddressIPv6: '', MacAddress: '' },
        Options: NO_PORTS,
      });
      return;
    case 'Join':
      await c.call('/NetworkDriver.Join', { ...ids, SandboxKey: ep.sandboxKey, Options: NO_PORTS });
      return;
    case 'Leave':
      await c.call('/NetworkDriver.Leave', ids);
      return;
    case 'DeleteEndpoint':
      await c.call('/NetworkDriver.DeleteEndpoint', ids);
      return;
    case 'ReleaseAddress':
      await c.call('/IpamDriver.ReleaseAddress', { PoolID: ep.net.poolId, Address: ep.ip });
      return;
  }
}

/** Run `steps` in order; the first failing step, its error and how long its reply took, or undefined when all passed. */
export async function runSteps<S extends string>(
  steps: readonly S[],
  one: (s: S) => Promise<void>,
): Promise<{ step: S; error: string; ms: number } | undefined> {
  for (const s of steps) {
    const t0 = performance.now();
    try {
      await one(s);
    } catch (e) {
      return { step: s, error: e instanceof Error ? e.message : String(e), ms: performance.now() - t0 };
    }
  }
  return undefined;
}

/** What dockerd sends after `failed` failed (libnetwork's rollback / best-effort teardown). */
export function epRollback(failed: EpStep): EpStep[] {
  switch (failed) {
    case 'RequestAddress':
      return [];
    case 'CreateEndpoint':
      return ['ReleaseAddress'];
    case 'Join':
    case 'Leave':
      return ['DeleteEndpoint', 'ReleaseAddress'];
    case 'DeleteEndpoint':
      return ['ReleaseAddress'];
    case 'ReleaseAddress':
      return [];
  }
}

export function netRollback(failed: NetStep): NetStep[] {
  switch (failed) {
    case 'RequestPool':
      return [];
    case 'RequestGateway':
      return ['ReleasePool'];
    case 'CreateNetwork':
      return ['ReleaseGateway', 'ReleasePool'];
    case 'DeleteNetwork': // `docker network rm` failed and is run again
      return ['DeleteNetwork', 'ReleaseGateway', 'ReleasePool'];
    case 'ReleaseGateway':
      return ['ReleasePool'];
    case 'ReleasePool':
      return [];
  }
}

/** Best effort: every step is sent, failures are collected (dockerd logs them). */
export async function bestEffort<S extends string>(
  steps: readonly S[],
  one: (s: S) => Promise<void>,
): Promise<string[]> {
  const errors: string[] = [];
  for (const s of steps) {
    try {
      await one(s);
    } catch (e) {
      errors.push(`${s}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return errors;
}

export { PluginClient };
