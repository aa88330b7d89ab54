/**
 * F9 churn (reliability plan) on one or more hosts at once: per round, `parallel` concurrent
 * `docker run -d` on every host, then a mixed phase (half of each host's containers removed while
 * as many start), then all removed in parallel. A failed run is recorded (its stderr) and its
 * container removed; the churn goes on, so one failure does not hide the rest. After each phase
 * with containers up, the addresses of the churn's own containers are read (every host's) and
 * `onPhase` runs (e.g. a duplicate check over every container on the network).
 */
import { containerIp, removeContainers } from './containers.ts';
import type { Host } from './host.ts';
import { IMAGE } from './image.ts';

export interface ChurnOptions {
  readonly network: string;
  readonly rounds: number;
  /** concurrent starts per host per round */
  readonly parallel: number;
  /** container names are `${prefix}${host index}-${n}` */
  readonly prefix: string;
  readonly onPhase?: (phase: string) => Promise<void>;
}

export interface ChurnResult {
  /** `host/name: dockerd's message` of every failed `docker run` */
  readonly failures: string[];
  readonly started: number;
  /** addresses the churn's containers had, over all phases and hosts */
  readonly addresses: Set<string>;
  /** per phase with containers up: addresses held by two of the churn's containers at once */
  readonly duplicates: string[];
}

export async function churn(hosts: readonly Host[], o: ChurnOptions): Promise<ChurnResult> {
  const failures: string[] = [];
  const addresses = new Set<string>();
  const duplicates: string[] = [];
  let n = 0;
  let started = 0;
  const start = async (h: Host, hi: number): Promise<string | undefined> => {
    const name = `${o.prefix}${hi}-${n++}`;
    const r = await h.docker(['run', '-d', '--name', name, '--network', o.network, IMAGE, 'sleep', '3600'], 120_000);
    if (r.code === 0) {
      started++;
      return name;
    }
    failures.push(`${h.name}/${name}: ${r.stderr.trim()}`);
    await removeContainers(h, [name]);
    return undefined;
  };
  const startMany = async (h: Host, hi: number, count: number): Promise<string[]> =>
    (await Promise.all(Array.from({ length: count }, () => start(h, hi)))).filter((x) => x !== undefined);
  const stopEach = (h: Host, names: readonly string[]) => Promise.all(names.map((c) => removeContainers(h, [c])));
  const check = async (phase: string, live: readonly string[][]): Promise<void> => {
    const seen = new Map<string, string>();
    for (const [hi, names] of live.entries()) {
      const h = hosts[hi] as Host;
      const ips = await Promise.all(names.map((c) => containerIp(h, c, o.network)));
      ips.forEach((ip, i) => {
        const who = `${h.name}/${names[i]}`;
        const prev = seen.get(ip);
        if (ip === '' || prev !== undefined) duplicates.push(`${phase}: ${ip || 'no address'} on ${prev} and ${who}`);
        seen.set(ip, who);
        if (ip !== '') addresses.add(ip);
      });
    }
    await o.onPhase?.(phase);
  };

  for (let r = 0; r < o.rounds; r++) {
    const up = await Promise.all(hosts.map((h, hi) => startMany(h, hi, o.parallel)));
    await check(`round ${r + 1} start`, up);
    const live = await Promise.all(
      hosts.map(async (h, hi) => {
        const mine = up[hi] as string[];
        const half = Math.floor(mine.length / 2);
        const [, more] = await Promise.all([stopEach(h, mine.slice(0, half)), startMany(h, hi, half)]);
        return [...mine.slice(half), ...more];
      }),
    );
    await check(`round ${r + 1} mixed`, live);
    await Promise.all(hosts.map((h, hi) => stopEach(h, live[hi] as string[])));
  }
  return { failures, started, addresses, duplicates };
}
