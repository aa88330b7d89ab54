/**
 * TCP from inside a network namespace without `docker exec`: the machine's busybox nc under
 * nsenter, in a container's namespace (by its pid) or in the simulated host's. The packets
 * are the container's own (same interface, same source address), and an attempt costs a few
 * ms instead of a docker exec, so a measured time is the network's, not the CLI's.
 * Servers are the image's tsink (traffic.ts): a round trip means the server acknowledged.
 */
import { inNetns, run } from './exec.ts';
import { BUSYBOX } from './image.ts';
import { newToken, type TcpResult } from './traffic.ts';

/** A container's namespace (pid of a process in it) or a named one (the simulated host's). */
export type NetnsRef = { readonly pid: number } | { readonly path: string };

export const enterNetns = (ns: NetnsRef, argv: readonly string[]): string[] =>
  'pid' in ns ? ['nsenter', `--target=${ns.pid}`, '--net', '--', ...argv] : inNetns(ns.path, argv);

/** One connect to ip:port from inside `ns`; ok when the sink acknowledged our token. */
export async function nsTcpConnect(
  ns: NetnsRef,
  ip: string,
  port: number,
  timeoutS = 2,
  token = newToken(),
): Promise<TcpResult> {
  const script = 'echo "$1" | "$2" nc -w "$3" "$4" "$5"';
  const argv = enterNetns(ns, [BUSYBOX, 'sh', '-c', script, 'sh', token, BUSYBOX, String(timeoutS), ip, String(port)]);
  const r = await run(argv, { timeoutMs: (timeoutS + 10) * 1000 });
  const output = `${r.stdout}${r.stderr}`.trim();
  return { ok: r.code === 0 && r.stdout.includes(`ack ${token}`), token, output };
}

/** A few pings from inside `ns`; true if at least one reply came back. */
export async function nsPing(ns: NetnsRef, ip: string, count = 3): Promise<boolean> {
  const argv = enterNetns(ns, [BUSYBOX, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', ip]);
  return (await run(argv, { timeoutMs: 30_000 })).code === 0;
}

/**
 * ms from t0 (performance.now()) until a fresh connection to ip:port first completes a round
 * trip, starting a new attempt (new SYN) every stepMs so a dropped SYN's 1 s retransmit does
 * not hide when the path opened; undefined if none succeeded within limitMs of t0.
 */
export async function msUntilConnects(
  ns: NetnsRef,
  ip: string,
  port: number,
  t0: number,
  limitMs = 3000,
  stepMs = 100,
): Promise<number | undefined> {
  let first: number | undefined;
  const attempts: Promise<void>[] = [];
  while (first === undefined && performance.now() - t0 < limitMs) {
    attempts.push(
      nsTcpConnect(ns, ip, port, 1).then((r) => {
        const at = performance.now() - t0;
        if (r.ok && (first === undefined || at < first)) first = at;
      }),
    );
    const next = performance.now() + stepMs;
    while (first === undefined && performance.now() < next) await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(attempts);
  return first !== undefined && first <= limitMs ? Math.round(first) : undefined;
}
