/**
 * The multi-host benchmark's two wireguard-go versions (issue 18): the newest Debian offers
 * (truss's own, Debian unstable's: scripts/lib/packages.sh), which truss runs by default, and
 * this release's package (/usr/bin/wireguard-go, Debian 12's 0.0.20220316 here), which a host
 * without truss's own would run. Each is measured as truss ÷ a bare tunnel of the same
 * wireguard-go, and newest ÷ older. truss is switched between them by a restart with
 * --wireguard-go (TRUSS_WIREGUARD_GO) after deleting its device: a restarted truss adopts a
 * running wireguard-go, so the device must go for the other binary to start.
 */

import { run } from '../e2e/harness/exec.ts';
import type { Host } from '../e2e/harness/host.ts';
import { inHostMounts } from '../e2e/harness/host.ts';
import { compareVersions, parseWireguardGoVersion } from '../src/core/wireguard-impl.ts';
import { TRUSS_WIREGUARD_GO } from '../src/dataplane/linux/wireguard-go.ts';

export const RELEASE_WIREGUARD_GO = '/usr/bin/wireguard-go';

export interface WireguardGo {
  readonly path: string;
  readonly version: string;
}

async function versionOf(path: string): Promise<WireguardGo | undefined> {
  const r = await run([path, '--version']).catch(() => undefined);
  const version = r?.code === 0 ? parseWireguardGoVersion(r.stdout) : undefined;
  return version === undefined ? undefined : { path, version };
}

/** The newest wireguard-go (truss's own when there) and, when the release's is older, that one. */
export async function wireguardGoVersions(): Promise<{ newest: WireguardGo; older?: WireguardGo }> {
  const found = (await Promise.all([TRUSS_WIREGUARD_GO, RELEASE_WIREGUARD_GO].map(versionOf))).filter(
    (w): w is WireguardGo => w !== undefined,
  );
  found.sort((x, y) => compareVersions(y.version, x.version));
  const [newest, older] = found;
  if (!newest) throw new Error(`bench/cluster: no wireguard-go at ${TRUSS_WIREGUARD_GO} or ${RELEASE_WIREGUARD_GO}`);
  return older && compareVersions(older.version, newest.version) < 0 ? { newest, older } : { newest };
}

/** Restarts truss on `hs` with `wgGo` as --wireguard-go, its WireGuard device deleted first. */
export async function switchTrussWireguardGo(hs: readonly Host[], dev: string, wgGo: WireguardGo): Promise<void> {
  // all at once: a peer configured seconds after the other costs a handshake retry (~5 s)
  await Promise.all(
    hs.map(async (h) => {
      await h.truss.stop();
      await inHostMounts(h, ['ip', 'link', 'del', dev]); // wireguard-go exits when its TUN goes
      await h.truss.restart({ TRUSS_WIREGUARD_GO: wgGo.path });
    }),
  );
}
