/**
 * Real traffic between containers, with busybox only. The TCP server is the image's
 * `tsink` run by `nc -ll` (SINK_CMD): it records each client's line in /tmp/seen and
 * answers "ack <line>", so a test can prove both a round trip and "the server saw nothing".
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Host } from './host.ts';

export const SINK_PORT = 7000;
/** Container command for a persistent TCP sink on `port`. */
export const SINK_CMD = (port = SINK_PORT): string[] => ['nc', '-ll', '-p', String(port), '-e', '/bin/tsink'];

export const newToken = (): string => `tok-${randomBytes(6).toString('hex')}`;

export interface TcpResult {
  readonly ok: boolean;
  readonly token: string;
  readonly output: string;
}

/** Connects from a container to ip:port with busybox nc; ok when the sink acknowledged our token. */
export async function tcpConnect(
  host: Host,
  fromContainer: string,
  ip: string,
  port = SINK_PORT,
  timeoutS = 3,
  token = newToken(),
): Promise<TcpResult> {
  const script = 'echo "$1" | nc -w "$2" "$3" "$4"';
  const r = await host.docker(
    ['exec', fromContainer, 'sh', '-c', script, 'sh', token, String(timeoutS), ip, String(port)],
    (timeoutS + 10) * 1000,
  );
  const output = `${r.stdout}${r.stderr}`.trim();
  return { ok: r.code === 0 && r.stdout.includes(`ack ${token}`), token, output };
}

/** Whether a sink container ever received this token (the receiver-side check for isolation tests). */
export async function serverSaw(host: Host, sinkContainer: string, token: string): Promise<boolean> {
  const r = await host.docker(['exec', sinkContainer, 'cat', '/tmp/seen']);
  return r.code === 0 && r.stdout.split('\n').includes(token);
}

/** TCP from a container to a sink (`toCtr` on `to`, at ip:port): fails unless it answered and recorded the token. */
export async function assertTcp(from: Host, fromCtr: string, to: Host, toCtr: string, ip: string, port = SINK_PORT) {
  const r = await tcpConnect(from, fromCtr, ip, port);
  const what = `${from.name}/${fromCtr} -> ${to.name}/${toCtr} (${ip}:${port})`;
  assert.ok(r.ok, `${what} TCP failed: ${r.output}`);
  assert.ok(await serverSaw(to, toCtr, r.token), `${what}: the sink did not record the token`);
}

/** A few pings; true if at least one reply came back. */
export async function ping(host: Host, fromContainer: string, ip: string, count = 3): Promise<boolean> {
  const r = await host.docker(['exec', fromContainer, 'ping', '-c', String(count), '-i', '0.2', '-W', '2', ip], 30_000);
  return r.code === 0;
}

export interface ProbeResult {
  readonly sent: number;
  readonly received: number;
  /**
   * Longest time without a reply arriving, in ms. A reply's arrival is estimated as
   * seq × interval + its RTT, so packets that were held (queued) and delivered late count as a
   * gap too, not only lost ones. A healthy path gives about one interval.
   */
  readonly maxGapMs: number;
  readonly output: string;
}

/** Parses busybox ping output ("seq=N ttl=T time=X ms") into counts and the longest reply gap. */
export function parsePing(output: string, intervalMs: number): ProbeResult {
  const replies = new Map<number, number>();
  for (const m of output.matchAll(/seq=(\d+)(?:\s+ttl=\d+)?(?:\s+time=([\d.]+) ms)?/g)) {
    const seq = Number(m[1]);
    if (!replies.has(seq)) replies.set(seq, seq * intervalMs + Number(m[2] ?? 0));
  }
  const sent = Number(/(\d+) packets transmitted/.exec(output)?.[1] ?? 0);
  const arrivals = [...replies.values()].sort((a, b) => a - b);
  let prev = 0;
  let worst = 0;
  for (const t of [...arrivals, sent * intervalMs]) {
    worst = Math.max(worst, t - prev);
    prev = Math.max(prev, t);
  }
  const received = replies.size;
  return { sent, received, maxGapMs: received === 0 ? Number.POSITIVE_INFINITY : Math.round(worst), output };
}

/**
 * Continuous ping for durationS seconds every intervalMs; start it, do the disruptive thing,
 * then await the promise. A healthy path gives maxGapMs == intervalMs.
 */
export async function pingProbe(
  host: Host,
  fromContainer: string,
  ip: string,
  durationS: number,
  intervalMs = 100,
): Promise<ProbeResult> {
  const args = ['exec', fromContainer, 'ping', '-i', String(intervalMs / 1000), '-w', String(durationS), '-W', '1', ip];
  const r = await host.docker(args, (durationS + 30) * 1000);
  return parsePing(`${r.stdout}${r.stderr}`, intervalMs);
}

export interface RunningProbe {
  /** Stops the ping (SIGINT: it prints its summary) and parses what it printed; later calls give the same. */
  stop(): Promise<ProbeResult>;
}

/**
 * A ping from a container every intervalMs until stop(), for a disruption of unknown length
 * (pingProbe's is fixed); maxS bounds it should stop() never come.
 */
export function startPingProbe(
  host: Host,
  fromContainer: string,
  ip: string,
  intervalMs = 100,
  maxS = 300,
): RunningProbe {
  const pidFile = `/tmp/probe-${randomBytes(4).toString('hex')}.pid`;
  // exec: the shell's pid becomes ping's, which stop() signals from another docker exec
  const script = 'echo $$ > "$1"; exec ping -i "$2" -w "$3" -W 1 "$4"';
  const args = [String(intervalMs / 1000), String(maxS), ip];
  const done = host.docker(['exec', fromContainer, 'sh', '-c', script, 'sh', pidFile, ...args], (maxS + 30) * 1000);
  let stopped: Promise<ProbeResult> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        const kill = 'for i in $(seq 50); do [ -s "$1" ] && exec kill -INT "$(cat "$1")"; sleep 0.1; done';
        await host.docker(['exec', fromContainer, 'sh', '-c', kill, 'sh', pidFile]);
        const r = await done;
        return parsePing(`${r.stdout}${r.stderr}`, intervalMs);
      })();
      return stopped;
    },
  };
}

/** iperf3 -J output → received Gbit/s; throws with the start of the output when there is none. */
export function iperfGbps(stdout: string): number {
  const j = JSON.parse(stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number' || bps <= 0) throw new Error(`iperf3: no throughput in ${stdout.slice(0, 500)}`);
  return bps / 1e9;
}
