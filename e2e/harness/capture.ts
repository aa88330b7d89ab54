/**
 * Receiver-side proof that a packet was never delivered: tcpdump inside a container's network
 * namespace (nsenter --target PID --net) counting TCP SYNs (SYN without ACK) per destination
 * port. Whatever a firewall in the host drops never shows up here; whatever reaches the
 * container's interface does, listening socket or not.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { CHILD_PATH } from './paths.ts';
import { waitFor } from './wait.ts';

export interface SynCounts {
  /** SYNs seen per destination port (ports never seen are absent) */
  readonly byPort: ReadonlyMap<number, number>;
  /** tcpdump's packet lines, for failure messages */
  readonly lines: readonly string[];
  /** packets tcpdump reports as dropped by the kernel (a capture that lost packets proves nothing) */
  readonly dropped: number;
}

export interface SynCapture {
  /** Stops tcpdump (SIGINT, so it flushes and prints its totals) and counts. Idempotent. */
  stop(): Promise<SynCounts>;
}

const SYN_LINE = /IP6? \S+\.\d+ > \S+\.(\d+): Flags \[S\]/;

/** Parses tcpdump -n output lines into SYN counts per destination port. */
export function countSyns(stdout: string, stderr: string): SynCounts {
  const byPort = new Map<number, number>();
  const lines: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = SYN_LINE.exec(line);
    if (!m) continue;
    lines.push(line.trim());
    const port = Number(m[1]);
    byPort.set(port, (byPort.get(port) ?? 0) + 1);
  }
  const dropped = Number(/(\d+) packets? dropped by kernel/.exec(stderr)?.[1] ?? 0);
  return { byPort, lines, dropped };
}

/**
 * Starts counting SYNs to `ports` in the network namespace of process `pid` (a container's
 * init); resolves once tcpdump listens. Always stop() it (try/finally).
 */
export async function captureSyns(pid: number, ports: readonly number[], family: 4 | 6 = 4): Promise<SynCapture> {
  // why ip6[53]: BPF's tcp[] offsets are IPv4-only; byte 53 is the TCP flags after a bare 40-byte IPv6 header
  const syn = family === 4 ? 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn' : 'ip6 and tcp and ip6[53] & 0x12 == 0x02';
  const filter = `${syn} and (${ports.map((p) => `dst port ${p}`).join(' or ')})`;
  const argv = ['--target', String(pid), '--net', '--', 'tcpdump', '-i', 'any', '-n', '-l', '-p', '--immediate-mode'];
  const child: ChildProcess = spawn('nsenter', [...argv, filter], {
    env: { ...process.env, PATH: CHILD_PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const closed = new Promise<void>((resolve) => {
    child.on('close', () => {
      exited = true;
      resolve();
    });
    child.on('error', () => {
      exited = true;
      resolve();
    });
  });
  let result: Promise<SynCounts> | undefined;
  const stop = (): Promise<SynCounts> => {
    result ??= (async () => {
      if (!exited) child.kill('SIGINT');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await closed;
      clearTimeout(killer);
      return countSyns(stdout, stderr);
    })();
    return result;
  };
  try {
    await waitFor(
      () => {
        if (exited) throw new Error(`tcpdump exited: ${stderr.trim()}`);
        return stderr.includes('listening on');
      },
      10_000,
      { what: `tcpdump listening in the netns of pid ${pid}`, intervalMs: 50 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
