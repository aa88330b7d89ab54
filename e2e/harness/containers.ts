/** Container and network helpers over a host's docker CLI: create, run, inspect addresses, time start-ups, remove. */
import type { Host } from './host.ts';
import { IMAGE } from './image.ts';
import { waitFor } from './wait.ts';

/** docker network create -d truss --ipam-driver truss ...args */
export const createTrussNetwork = (host: Host, args: readonly string[]) =>
  host.docker(['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', ...args]);

/** A cluster network of that name (-o truss.cluster=name) on subnet, with more options (opts) if given. */
export const createClusterNetwork = (host: Host, name: string, subnet: string, opts: readonly string[] = []) =>
  createTrussNetwork(host, ['-o', `truss.cluster=${name}`, ...opts, '--subnet', subnet, name]);

export interface RunSpec {
  readonly name: string;
  readonly network?: string;
  readonly cmd?: readonly string[];
  readonly ip?: string;
}

/** docker run -d; throws with dockerd's message on failure. Default command: sleep for an hour. */
export async function runContainer(host: Host, spec: RunSpec): Promise<string> {
  const args = ['run', '-d', '--name', spec.name];
  if (spec.network) args.push('--network', spec.network);
  if (spec.ip) args.push('--ip', spec.ip);
  args.push(IMAGE, ...(spec.cmd ?? ['sleep', '3600']));
  const r = await host.docker(args, 120_000);
  if (r.code !== 0) throw new Error(`docker run ${spec.name} failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** The container's IPv4 address on a network ('' if not attached). */
export async function containerIp(host: Host, container: string, network: string): Promise<string> {
  const fmt = `{{with index .NetworkSettings.Networks "${network}"}}{{.IPAddress}}{{end}}`;
  const r = await host.docker(['inspect', '-f', fmt, container]);
  if (r.code !== 0) throw new Error(`docker inspect ${container}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** The container's init pid as seen from the machine (for nsenter --target and /proc/PID/root). */
export async function containerPid(host: Host, container: string): Promise<number> {
  const r = await host.docker(['inspect', '-f', '{{.State.Pid}}', container]);
  const pid = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isInteger(pid) || pid <= 0) {
    throw new Error(`docker inspect ${container}: no running pid (${r.stderr.trim() || r.stdout.trim()})`);
  }
  return pid;
}

/** Docker's endpoint id (64 hex) of the container on a network ('' if not attached). */
export async function endpointId(host: Host, container: string, network: string): Promise<string> {
  const fmt = `{{with index .NetworkSettings.Networks "${network}"}}{{.EndpointID}}{{end}}`;
  const r = await host.docker(['inspect', '-f', fmt, container]);
  if (r.code !== 0) throw new Error(`docker inspect ${container}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** All (container name, network, IPv4) triples of running and stopped containers. */
export async function allAddresses(host: Host): Promise<{ container: string; network: string; ip: string }[]> {
  const ids = (await host.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
  if (ids.length === 0) return [];
  const fmt = '{{$n := .Name}}{{range $k, $v := .NetworkSettings.Networks}}{{$n}} {{$k}} {{$v.IPAddress}}\n{{end}}';
  const r = await host.docker(['inspect', '-f', fmt, ...ids]);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(' '))
    .filter((p) => p.length === 3 && p[2] !== '')
    .map(([c, n, ip]) => ({ container: (c as string).replace(/^\//, ''), network: n as string, ip: ip as string }));
}

export async function removeContainers(host: Host, names: readonly string[]): Promise<void> {
  if (names.length > 0) await host.docker(['rm', '-f', ...names], 120_000);
}

/**
 * Removes every container of the host (docker rm -f), then every user-defined network; returns
 * the networks `docker network rm` failed on, with dockerd's message.
 */
export async function removeEverything(host: Host): Promise<{ network: string; stderr: string }[]> {
  const ids = (await host.docker(['ps', '-aq'], 20_000)).stdout.split(/\s+/).filter(Boolean);
  await removeContainers(host, ids);
  const nets = await host.docker(['network', 'ls', '--filter', 'type=custom', '--format', '{{.Name}}'], 20_000);
  const failed: { network: string; stderr: string }[] = [];
  for (const network of nets.stdout.split(/\s+/).filter(Boolean)) {
    const r = await host.docker(['network', 'rm', network], 30_000);
    if (r.code !== 0) failed.push({ network, stderr: r.stderr });
  }
  return failed;
}

/** ms from `docker run -d` until the container is running, for `count` sequential containers. */
export async function timeStarts(host: Host, network: string, count: number, prefix: string): Promise<number[]> {
  const times: number[] = [];
  const names: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const name = `${prefix}-${i}`;
      names.push(name);
      const t0 = performance.now();
      await runContainer(host, { name, network });
      await waitFor(
        async () => (await host.docker(['inspect', '-f', '{{.State.Running}}', name])).stdout.trim() === 'true',
        30_000,
        { what: `${name} running`, intervalMs: 20 },
      );
      times.push(performance.now() - t0);
    }
  } finally {
    await removeContainers(host, names);
  }
  return times;
}
