/**
 * bench/scale's stand-in for dockerd: the plugin RPCs a Docker 28.5 daemon sends for
 * `docker network create` / `docker run` / `docker rm -f` / `docker network rm`, with the
 * request shapes of test/fixtures/dockerd-28.5.jsonl (no Content-Type, a body ending in a
 * newline, `Options: null` on address requests, empty exposedports/portmap lists), over one
 * keep-alive connection pool on the plugin's Unix socket, as Go's http client does.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';

const ACCEPT = 'application/vnd.docker.plugins.v1.2+json';
const GATEWAY = { RequestAddressType: 'com.docker.network.gateway' };
const NO_PORTS = { 'com.docker.network.endpoint.exposedports': [], 'com.docker.network.portmap': [] };

/** A 64-hex Docker id. */
export const dockerId = (): string => randomBytes(32).toString('hex');

export class PluginClient {
  readonly #socketPath: string;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  constructor(socketPath: string) {
    this.#socketPath = socketPath;
  }

  /** POST one RPC; resolves with the JSON reply, throws on a non-200 or an `Err`/`Error` in it. */
  call(path: string, body: unknown): Promise<Record<string, unknown>> {
    const payload = `${JSON.stringify(body)}\n`;
    const headers = { Accept: ACCEPT, 'Content-Length': Buffer.byteLength(payload) };
    return new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath: this.#socketPath, agent: this.#agent, path, method: 'POST', headers, timeout: 120_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let reply: Record<string, unknown> = {};
            try {
              reply = text.trim() === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
            } catch {
              reject(new Error(`${path}: ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
              return;
            }
            const err = reply.Err ?? reply.Error;
            if (res.statusCode !== 200 || (typeof err === 'string' && err !== '')) {
              reject(new Error(`${path}: ${res.statusCode} ${String(err ?? text.slice(0, 200))}`));
            } else resolve(reply);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${path}: no reply within 120 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export interface NetworkRef {
  readonly id: string;
  readonly poolId: string;
  readonly gateway: string;
}

/** `docker network create -d truss --ipam-driver truss --subnet <subnet>` (and `-o K=V` for each of `generic`). */
export async function createNetwork(
  c: PluginClient,
  subnet: string,
  generic: Readonly<Record<string, string>> = {},
): Promise<NetworkRef> {
  const spaces = await c.call('/IpamDriver.GetDefaultAddressSpaces', {});
  const space = String(spaces.LocalDefaultAddressSpace);
  const pool = await c.call('/IpamDriver.RequestPool', {
    AddressSpace: space,
    Pool: subnet,
    SubPool: '',
    Options: {},
    V6: false,
  });
  const poolId = String(pool.PoolID);
  const gw = await c.call('/IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: GATEWAY });
  const id = dockerId();
  await c.call('/NetworkDriver.CreateNetwork', {
    NetworkID: id,
    Options: {
      'com.docker.network.enable_ipv4': true,
      'com.docker.network.enable_ipv6': false,
      'com.docker.network.generic': generic,
    },
    IPv4Data: [{ AddressSpace: space, Gateway: String(gw.Address), Pool: subnet }],
    IPv6Data: [],
  });
  return { id, poolId, gateway: String(gw.Address) };
}

/** `docker network rm`: DeleteNetwork, then the gateway address and the pool go back. */
export async function deleteNetwork(c: PluginClient, n: NetworkRef): Promise<void> {
  await c.call('/NetworkDriver.DeleteNetwork', { NetworkID: n.id });
  await c.call('/IpamDriver.ReleaseAddress', { PoolID: n.poolId, Address: n.gateway.replace(/\/\d+$/, '') });
  await c.call('/IpamDriver.ReleasePool', { PoolID: n.poolId });
}

export interface EndpointRef {
  readonly net: NetworkRef;
  readonly id: string;
  readonly address: string;
  /** the host-side name of the interface the plugin made (Join's InterfaceName.SrcName) */
  srcName: string;
}

/** The container's address: `RequestAddress` with `Options: null`, as dockerd sends it (`--ip`: `address`). */
export async function requestAddress(c: PluginClient, net: NetworkRef, address = ''): Promise<EndpointRef> {
  const r = await c.call('/IpamDriver.RequestAddress', { PoolID: net.poolId, Address: address, Options: null });
  return { net, id: dockerId(), address: String(r.Address), srcName: '' };
}

/** The attach the benchmark times: CreateEndpoint + Join, back to back. */
export async function createAndJoin(c: PluginClient, ep: EndpointRef, sandboxKey: string): Promise<void> {
  await c.call('/NetworkDriver.CreateEndpoint', {
    NetworkID: ep.net.id,
    EndpointID: ep.id,
    Interface: { Address: ep.address, AddressIPv6: '', MacAddress: '' },
    Options: NO_PORTS,
  });
  const join = await c.call('/NetworkDriver.Join', {
    NetworkID: ep.net.id,
    EndpointID: ep.id,
    SandboxKey: sandboxKey,
    Options: NO_PORTS,
  });
  const src = (join.InterfaceName as { SrcName?: unknown } | undefined)?.SrcName;
  if (typeof src !== 'string' || src === '')
    throw new Error(`Join gave no InterfaceName.SrcName: ${JSON.stringify(join)}`);
  ep.srcName = src;
}

/** What dockerd sends once the interface is in the sandbox. */
export const programExternal = (c: PluginClient, ep: EndpointRef): Promise<Record<string, unknown>> =>
  c.call('/NetworkDriver.ProgramExternalConnectivity', {
    NetworkID: ep.net.id,
    EndpointID: ep.id,
    Options: { 'com.docker.network.driver.private.no_proxy_6to4': false, ...NO_PORTS },
  });

/** `docker rm -f` starts with this, before the interface leaves the sandbox. */
export const revokeExternal = (c: PluginClient, ep: EndpointRef): Promise<Record<string, unknown>> =>
  c.call('/NetworkDriver.RevokeExternalConnectivity', { NetworkID: ep.net.id, EndpointID: ep.id });

/** The sandbox has given the interface back: Leave. */
export const leave = (c: PluginClient, ep: EndpointRef): Promise<Record<string, unknown>> =>
  c.call('/NetworkDriver.Leave', { NetworkID: ep.net.id, EndpointID: ep.id });

/** … and after it: DeleteEndpoint, ReleaseAddress. */
export async function deleteEndpoint(c: PluginClient, ep: EndpointRef): Promise<void> {
  await c.call('/NetworkDriver.DeleteEndpoint', { NetworkID: ep.net.id, EndpointID: ep.id });
  await c.call('/IpamDriver.ReleaseAddress', { PoolID: ep.net.poolId, Address: ep.address.replace(/\/\d+$/, '') });
}
