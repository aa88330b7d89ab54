/**
 * The kernel's part of bench/scale.ts: the sandbox namespaces set up as a container's, and a
 * control that does what an attach asks of the kernel without truss.
 *
 * - Sandboxes: the benchmark shares one namespace among a network's endpoints (hundreds of
 *   interfaces in it), where a container has one. With IPv6 on, each of them brings a link-local
 *   address and its routes into that one namespace, and the kernel's work on them grows with their
 *   number and holds the lock every namespace's link changes take: measured here, the host-side
 *   create + enslave + up went from 2.2 to 22 ms with 2,000 peers up in one shared namespace, and
 *   stayed at 3.3 ms with IPv6 off in it. The endpoints are IPv4, so IPv6 is turned off in the
 *   sandboxes: the cost a real host pays (one interface per namespace) is what the control measures.
 * - The control: `ip -batch` creating a veth pair, enslaving one end to a bridge of the benchmark's
 *   own and bringing it up (the kernel calls of a bridge-mode attach), timed in the host namespace
 *   beside truss's attaches at each end of the run, then deleted (untimed). Its growth is the
 *   kernel's, which Docker's bridge pays as much: with 2,000 container namespaces of one interface
 *   each, the same create + enslave + up went from 5.8 to 14 ms with and without IPv6.
 */
import { run } from '../e2e/harness/exec.ts';

/** The benchmark's own bridge and pair: names no truss link has (naming.isTrussLinkName). */
const BRIDGE = 'bnchbr0';
const PAIR = ['bnchA', 'bnchB'] as const;

async function must(argv: readonly string[], input?: string): Promise<void> {
  const r = await run(argv, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} → ${r.code}: ${r.stderr.trim()}`);
}

/** A sandbox as a container on an IPv4 network has it, as far as the kernel's work goes (above). */
export const sandboxIpv6Off = (ns: string): Promise<void> =>
  must([
    'ip',
    'netns',
    'exec',
    ns,
    'sysctl',
    '-q',
    '-w',
    'net.ipv6.conf.all.disable_ipv6=1',
    'net.ipv6.conf.default.disable_ipv6=1',
  ]);

export const createControlBridge = (hostNs: string): Promise<void> =>
  must(['ip', '-n', hostNs, '-batch', '-'], `link add ${BRIDGE} type bridge\nlink set ${BRIDGE} up\n`);

/** ms for the kernel alone to create, enslave and bring up a pair in hostNs; the pair is then deleted. */
export async function controlAttachMs(hostNs: string): Promise<number> {
  const [a, b] = PAIR;
  const t0 = performance.now();
  await must(
    ['ip', '-n', hostNs, '-batch', '-'],
    `link add ${a} type veth peer name ${b}\nlink set ${a} master ${BRIDGE} up\n`,
  );
  const ms = performance.now() - t0;
  await must(['ip', '-n', hostNs, 'link', 'del', a]);
  return ms;
}

export const removeControlBridge = (hostNs: string): Promise<void> => must(['ip', '-n', hostNs, 'link', 'del', BRIDGE]);
