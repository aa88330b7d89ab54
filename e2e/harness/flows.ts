/**
 * Long-lived TCP flows whose progress a test can watch. The client runs inside its container
 * (docker exec -d, busybox only): it sends `flow-NAME`, then a 64-byte line every 20 ms, to a
 * tsink server, which appends the stream to /tmp/flow-NAME in the server container. Progress
 * is that file's size, read from the machine through /proc/<server pid>/root (no docker exec,
 * so samples are ms apart and cost nothing). A flow that a firewall cuts stops growing.
 */

import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { containerPid } from './containers.ts';
import type { Host } from './host.ts';
import { sleep, waitFor } from './wait.ts';

export interface FlowSpec {
  /** client container */
  readonly from: string;
  /** server container (runs tsink on port) */
  readonly to: string;
  readonly ip: string;
  readonly port: number;
}

export interface Flow extends FlowSpec {
  readonly name: string;
  /** bytes the server has received so far */
  bytes(): number;
  /** Kills the client's nc (its writer loop then dies on SIGPIPE). Best effort, idempotent. */
  stop(): Promise<void>;
}

// $! after `a | b &` is b's pid in busybox ash: killing nc ends the pipeline.
const CLIENT = `name=$1; ip=$2; port=$3
{ echo "$name"; while :; do echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde; usleep 20000; done; } | nc "$ip" "$port" &
echo $! > "/tmp/c$name.pid"
wait`;

/** Starts a flow and waits until the server has received data through it. */
export async function startFlow(host: Host, spec: FlowSpec, timeoutMs = 10_000): Promise<Flow> {
  const name = `flow-${randomBytes(4).toString('hex')}`;
  const serverPid = await containerPid(host, spec.to);
  const file = `/proc/${serverPid}/root/tmp/${name}`;
  const bytes = (): number => {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  let stopped = false;
  const flow: Flow = {
    ...spec,
    name,
    bytes,
    async stop() {
      if (stopped) return;
      stopped = true;
      await host.docker(['exec', spec.from, 'sh', '-c', `kill "$(cat /tmp/c${name}.pid)"`], 15_000);
    },
  };
  const r = await host.docker(['exec', '-d', spec.from, 'sh', '-c', CLIENT, 'sh', name, spec.ip, String(spec.port)]);
  if (r.code !== 0) throw new Error(`docker exec ${spec.from} (flow client): ${r.stderr.trim()}`);
  try {
    const start = bytes();
    await waitFor(() => bytes() > start + 256, timeoutMs, {
      what: `flow ${spec.from} -> ${spec.to} ${spec.ip}:${spec.port} carrying data`,
      intervalMs: 50,
    });
  } catch (err) {
    await flow.stop();
    throw err;
  }
  return flow;
}

export interface FlowSample {
  /** performance.now() */
  readonly t: number;
  readonly bytes: readonly number[];
}

export interface FlowWatch {
  /** Ends sampling and returns every sample taken. */
  stop(): Promise<FlowSample[]>;
}

/** Samples every flow's byte count every intervalMs until stop() (start it before the change under test). */
export function watchFlows(flows: readonly Flow[], intervalMs = 50): FlowWatch {
  const samples: FlowSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      samples.push({ t: performance.now(), bytes: flows.map((f) => f.bytes()) });
      await sleep(intervalMs);
    }
    samples.push({ t: performance.now(), bytes: flows.map((f) => f.bytes()) });
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** Time of the last sample at which flow i had grown since the previous sample (undefined: never grew). */
export function lastGrowth(samples: readonly FlowSample[], i: number): number | undefined {
  let last: number | undefined;
  for (let k = 1; k < samples.length; k++) {
    if ((samples[k]?.bytes[i] ?? 0) > (samples[k - 1]?.bytes[i] ?? 0)) last = samples[k]?.t;
  }
  return last;
}

/** Bytes flow i gained between the samples nearest to times from and to. */
export function gainedBetween(samples: readonly FlowSample[], i: number, from: number, to: number): number {
  const at = (t: number): number => {
    let best = samples[0];
    for (const s of samples) if (s.t <= t) best = s;
    return best?.bytes[i] ?? 0;
  };
  return at(to) - at(from);
}
