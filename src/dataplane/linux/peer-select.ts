/**
 * The device layer's own guard against a bad peer (pure): the peers of a WireGuard or VXLAN
 * spec that would make the whole device invalid are left out, one by one, instead of failing
 * the device for every peer. core/cluster/peer-validation.ts already keeps such records out;
 * this is the second line, so a bug there costs one peer, not the cluster network.
 *   - a peer that fails the device's own checks on its own (key, endpoint, keepalive, CIDRs,
 *     address family, this host's key or address) is dropped;
 *   - a public key (WireGuard) or address/MAC (VXLAN) named by two peers: both are dropped;
 *   - an allowed IP named by two peers: that allowed IP is removed from both (neither gets it).
 */
import { formatPrefix, parsePrefix } from '../../core/ip.ts';
import { checkVxlanDevice, type VxlanDevice } from './vxlan.ts';
import { checkWireguardDevice, type WireguardDevice, type WireguardPeer } from './wireguard.ts';
import { short } from './wireguard-plan.ts';

export interface Selected<T> {
  readonly device: T;
  /** what was left out, for a warning */
  readonly dropped: readonly string[];
}

const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const counts = (values: readonly string[]): Map<string, number> => {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
};

export function selectWireguardPeers(w: WireguardDevice, ownPublicKey?: string): Selected<WireguardDevice> {
  const dropped: string[] = [];
  const alone = w.peers.filter((p) => {
    try {
      checkWireguardDevice({ ...w, peers: [p] });
    } catch (e) {
      dropped.push(why(e));
      return false;
    }
    if (p.publicKey === ownPublicKey) dropped.push(`peer ${short(p.publicKey)} has this host's own public key`);
    return p.publicKey !== ownPublicKey;
  });
  const keys = counts(alone.map((p) => p.publicKey));
  const canon = (c: string): string => formatPrefix(parsePrefix(c) as NonNullable<ReturnType<typeof parsePrefix>>);
  const ips = counts(alone.flatMap((p) => [...new Set(p.allowedIps.map(canon))]));
  const peers = alone.flatMap((p): WireguardPeer[] => {
    if ((keys.get(p.publicKey) ?? 0) > 1) {
      dropped.push(`peer ${short(p.publicKey)} is listed twice (duplicate public key)`);
      return [];
    }
    const allowedIps = p.allowedIps.filter((c) => {
      const shared = (ips.get(canon(c)) ?? 0) > 1;
      if (shared)
        dropped.push(`allowed IP ${canon(c)} is given to more than one peer: removed from ${short(p.publicKey)}`);
      return !shared;
    });
    return [{ ...p, allowedIps }];
  });
  return { device: { ...w, peers }, dropped };
}

export function selectVxlanPeers(v: VxlanDevice): Selected<VxlanDevice> {
  const dropped: string[] = [];
  const alone = v.peers.filter((p) => {
    try {
      checkVxlanDevice({ ...v, peers: [p] });
      return true;
    } catch (e) {
      dropped.push(why(e));
      return false;
    }
  });
  const canon = alone.map((p) => checkVxlanDevice({ ...v, peers: [p] }).peers[0] as VxlanDevice['peers'][number]);
  const seen = counts(canon.flatMap((p) => [p.address, p.mac]));
  const peers = canon.filter((c) => {
    const twice = (seen.get(c.address) ?? 0) > 1 || (seen.get(c.mac) ?? 0) > 1;
    if (twice) dropped.push(`peer ${c.address} (${c.mac}): address or MAC given twice`);
    return !twice;
  });
  return { device: { ...v, peers }, dropped };
}
