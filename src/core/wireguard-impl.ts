/**
 * Which WireGuard truss runs, pure half (the probes are dataplane/linux/wireguard-go.ts):
 * the kernel's whenever the kernel has it (fastest: no copies through a TUN device), else a
 * wireguard-go. Of the wireguard-go binaries found, the admin's explicit choice
 * (--wireguard-go / TRUSS_WIREGUARD_GO) always wins; otherwise the newest by its own
 * `--version`, truss's own (scripts/lib/packages.sh: Debian unstable's, in
 * /usr/local/lib/truss/wireguard-go) before the one on the PATH at equal versions. The newest
 * matters: Debian 12's 0.0.20220316 moves 0.34 Gbit/s on the test machine, unstable's
 * (GSO/GRO) over 1.2 (docs/cluster.md, Which WireGuard runs).
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

const RANK: Readonly<Record<WireguardGoSource, number>> = { flag: 0, truss: 1, path: 2 };

/**
 * The wireguard-go to run: the explicit one if any (even an older or unversioned one: the
 * admin decided), else the newest versioned one (truss's own first at a tie), else an
 * unversioned one (a build that does not say its version still runs).
 */
export function chooseWireguardGo(found: readonly WireguardGoCandidate[]): WireguardGoCandidate | undefined {
  const explicit = found.find((c) => c.source === 'flag');
  if (explicit) return explicit;
  const sorted = [...found].sort((a, b) => {
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
