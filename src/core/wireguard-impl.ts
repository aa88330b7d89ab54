/**
 * Which WireGuard truss runs, pure half (the probes are dataplane/linux/wireguard-go.ts):
 * the kernel's whenever the kernel has it (fastest: no copies through a TUN device), else a
 * wireguard-go. Of the wireguard-go binaries found, the admin's explicit choice
 * (--wireguard-go / TRUSS_WIREGUARD_GO) always wins; otherwise the newest by its own
 * `--version`, truss's own (scripts/lib/packages.sh: Debian unstable's, in
 * /usr/local/lib/truss/wireguard-go) before the one on the PATH at equal versions. The newest
 * matters: Debian 12's 0.0.20220316 moves 0.34 Gbit/s on the test machine, unstable's
 * (GSO/GRO) over 1.2 (docs/cluster.md, Which WireGuard runs). Except on a device whose peers mix
 * IPv4 and IPv6 endpoints: there the newest loses IPv6 packets (mixedFamilyBug) and an older one
 * without the bug is preferred.
 */

/** Where a wireguard-go binary was found. */
export type WireguardGoSource = 'flag' | 'truss' | 'path';

export interface WireguardGoCandidate {
  readonly path: string;
  readonly source: WireguardGoSource;
  /** from `wireguard-go --version`; undefined when it did not run or said nothing parseable */
  readonly version?: string;
}

export type WireguardImpl =
  | { readonly kind: 'kernel' }
  | ({ readonly kind: 'wireguard-go' } & WireguardGoCandidate)
  | { readonly kind: 'none' };

/** "wireguard-go v0.0.20250522\n\nUserspace WireGuard daemon…" → "0.0.20250522". */
export function parseWireguardGoVersion(text: string): string | undefined {
  return /^wireguard-go v?(\d+(?:\.\d+)*)/m.exec(text)?.[1];
}

/** Numeric, part by part: "0.0.20250522" > "0.0.20220316"; a missing part counts as 0. */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/**
 * Does this wireguard-go send IPv6 datagrams to a corrupted address when its device also has IPv4
 * peers? Since upstream 9e2f386 (vectorized I/O, first released in 0.0.20231211) Linux uses
 * StdNetBind, whose Send reuses pooled *net.UDPAddr: an IPv4 send leaves the pooled IP 4 bytes
 * long, and the next IPv6 send with that object copies only the first 4 bytes of the destination
 * before growing it back to 16, keeping 12 stale bytes (zeros, or another peer's). The datagram
 * (handshake or data) goes to e.g. fd00:200:: instead of fd00:200::2 and is lost (upstream PR
 * WireGuard/wireguard-go#135, open). Seen in wireguard.netns.ts: "who has fd00:200::" on the
 * underlay and 5 s handshake retries to the IPv6 peer. Releases up to 0.0.20250522, the newest
 * at the time, have it; a later one is assumed to carry the fix. Devices of one family are unharmed.
 */
export function mixedFamilyBug(version: string | undefined): boolean {
  if (version === undefined) return false; // unknown: nothing to prefer it against
  return compareVersions(version, '0.0.20230223') > 0 && compareVersions(version, '0.0.20250522') <= 0;
}

/** Do these endpoints ("198.18.0.2:51820", "[fd00::2]:51820") span both address families? */
export function mixesFamilies(endpoints: readonly (string | undefined)[]): boolean {
  const known = endpoints.filter((e): e is string => e !== undefined);
  return known.some((e) => e.startsWith('[')) && known.some((e) => !e.startsWith('['));
}

const RANK: Readonly<Record<WireguardGoSource, number>> = { flag: 0, truss: 1, path: 2 };

/**
 * The wireguard-go to run: the explicit one if any (even an older or unversioned one: the
 * admin decided), else the newest versioned one (truss's own first at a tie), else an
 * unversioned one (a build that does not say its version still runs). For a device whose
 * peers mix address families (`mixedFamilies`), one without mixedFamilyBug when there is one:
 * a slower tunnel rather than one that drops IPv6 packets.
 */
export function chooseWireguardGo(
  found: readonly WireguardGoCandidate[],
  o: { readonly mixedFamilies?: boolean } = {},
): WireguardGoCandidate | undefined {
  const explicit = found.find((c) => c.source === 'flag');
  if (explicit) return explicit;
  const sound = o.mixedFamilies ? found.filter((c) => !mixedFamilyBug(c.version)) : [];
  const sorted = [...(sound.length > 0 ? sound : found)].sort((a, b) => {
    if (a.version !== undefined && b.version !== undefined) {
      const d = compareVersions(b.version, a.version);
      if (d !== 0) return d;
    } else if (a.version !== b.version) {
      return a.version === undefined ? 1 : -1;
    }
    return RANK[a.source] - RANK[b.source];
  });
  return sorted[0];
}

/** Kernel WireGuard wins over any wireguard-go; a wireguard-go needs its TUN device. */
export function chooseWireguard(facts: {
  readonly kernel: boolean;
  readonly tun: boolean;
  readonly wireguardGo: readonly WireguardGoCandidate[];
}): WireguardImpl {
  if (facts.kernel) return { kind: 'kernel' };
  const go = facts.tun ? chooseWireguardGo(facts.wireguardGo) : undefined;
  return go ? { kind: 'wireguard-go', ...go } : { kind: 'none' };
}

const SOURCE_TEXT: Readonly<Record<WireguardGoSource, string>> = {
  flag: '--wireguard-go',
  truss: "truss's own",
  path: 'on the PATH',
};

/** One line for logs, `truss doctor` and `truss status`: "wireguard-go 0.0.20250522 (/usr/…, truss's own)". */
export function describeWireguard(impl: WireguardImpl): string {
  if (impl.kind === 'kernel') return 'kernel WireGuard';
  if (impl.kind === 'none') return 'none';
  return `wireguard-go ${impl.version ?? '(version unknown)'} (${impl.path}, ${SOURCE_TEXT[impl.source]})`;
}
