/**
 * An "outside world" for NAT tests: namespace <NETNS_PREFIX>out, linked to a simulated host by a
 * veth (host 198.19.250.1/30, outside 198.19.250.2/30). The host gets a default route via it
 * (only inside the host netns); the outside has no route back to container subnets, so only
 * masqueraded traffic gets replies. It runs a TCP echo server and can capture what arrives.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inNetns, run, runOk } from './exec.ts';
import type { Host } from './host.ts';
import { createNetns, deleteNetns } from './netns.ts';
import { CHILD_PATH, NETNS_PREFIX, WORK_DIR } from './paths.ts';
import { waitFor } from './wait.ts';

export const OUTSIDE_IP = '198.19.250.2';
export const HOST_UPLINK_IP = '198.19.250.1';
export const OUTSIDE_PORT = 8080;

/** Same protocol as the image's tsink, so traffic.ts tcpConnect() works against the outside too. */
const OUTSIDE_SINK = `#!/bin/sh
read -r line
echo "ack $line"
`;

export interface Capture {
  /** Stops tcpdump and returns the source addresses of the captured packets. */
  stop(): Promise<string[]>;
}

export interface Outside {
  readonly name: string;
  readonly netnsPath: string;
  /** Starts tcpdump on the outside end with a pcap filter; resolves once it is listening. */
  capture(filter: string): Promise<Capture>;
  stop(): Promise<void>;
}

export async function createOutside(host: Host, name = `${NETNS_PREFIX}out`): Promise<Outside> {
  const netnsPath = await createNetns(name);
  host.onStop(() => deleteNetns(name)); // registered first: a failure below must not leak the namespace
  const inHost = (a: string[]) => runOk(inNetns(host.netnsPath, a));
  const inOut = (a: string[]) => runOk(inNetns(netnsPath, a));
  await inHost(['ip', 'link', 'add', 'e2eout0', 'type', 'veth', 'peer', 'name', 'e2eout1', 'netns', name]);
  await inHost(['ip', 'addr', 'add', `${HOST_UPLINK_IP}/30`, 'dev', 'e2eout0']);
  await inHost(['ip', 'link', 'set', 'e2eout0', 'up']);
  await inOut(['ip', 'addr', 'add', `${OUTSIDE_IP}/30`, 'dev', 'e2eout1']);
  await inOut(['ip', 'link', 'set', 'e2eout1', 'up']);
  await inHost(['ip', 'route', 'replace', 'default', 'via', OUTSIDE_IP]);
  const sink = join(WORK_DIR, 'outside-sink.sh');
  writeFileSync(sink, OUTSIDE_SINK, { mode: 0o755 });
  const server = inNetns(netnsPath, ['busybox', 'nc', '-ll', '-p', String(OUTSIDE_PORT), '-e', sink]);
  spawn(server[0] as string, server.slice(1), { stdio: 'ignore', detached: true, env: { PATH: CHILD_PATH } }).unref();
  const listenHex = new RegExp(`:${OUTSIDE_PORT.toString(16).toUpperCase().padStart(4, '0')} 0+:0000 0A`);
  await waitFor(
    async () => listenHex.test((await run(inNetns(netnsPath, ['cat', '/proc/net/tcp', '/proc/net/tcp6']))).stdout),
    5000,
    {
      what: `the outside server on port ${OUTSIDE_PORT}`,
    },
  );
  const outside: Outside = {
    name,
    netnsPath,
    capture: (filter) => startCapture(netnsPath, filter),
    stop: () => deleteNetns(name), // kills the server and any capture, takes the veth with it
  };
  return outside;
}

function startCapture(netnsPath: string, filter: string): Promise<Capture> {
  const argv = inNetns(netnsPath, ['tcpdump', '-n', '-l', '-q', '-i', 'e2eout1', filter]);
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: CHILD_PATH },
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tcpdump did not start')), 10_000);
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('listening on')) {
        clearTimeout(timer);
        resolve({
          async stop() {
            await new Promise((r) => setTimeout(r, 300)); // let the last packets be printed
            child.kill('SIGINT');
            await closed;
            return [...out.matchAll(/IP6? (\S+) > /g)].map((m) => stripPort(m[1] as string));
          },
        });
      }
    });
    child.on('error', reject);
  });
}

/** tcpdump prints "addr.port" for TCP/UDP and bare "addr" for ICMP. */
function stripPort(tok: string): string {
  const isV4WithPort = tok.split('.').length === 5;
  const isV6WithPort = tok.includes(':') && tok.includes('.');
  return isV4WithPort || isV6WithPort ? tok.slice(0, tok.lastIndexOf('.')) : tok;
}
