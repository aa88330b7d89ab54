/**
 * The container MTU of cluster networks, from the underlay's MTU and address family: pure
 * arithmetic, shared by the cluster set-up (which picks the underlay) and the kernel tests.
 */
import { errors } from '../errors.ts';

/**
 * The tunnel's inner MTU: underlay MTU − outer IP (20 | 40) − UDP 8 − WireGuard 32 (header 16 +
 * tag 16), rounded down to 16 because WireGuard pads plaintext to 16 bytes (cilium#23917).
 */
export function computeWireguardMtu(underlayMtu: number, underlayFamily: 4 | 6): number {
  if (!Number.isInteger(underlayMtu) || underlayMtu < 576 || underlayMtu > 65535)
    throw errors.badOption(`invalid underlay MTU ${underlayMtu}: use 576-65535`);
  return Math.floor((underlayMtu - (underlayFamily === 4 ? 20 : 40) - 8 - 32) / 16) * 16;
}

/**
 * The device's (and its containers') MTU: underlay MTU − outer IP (20 | 40) − UDP 8 − VXLAN 8 −
 * inner Ethernet 14 = underlay − 50 (IPv4 underlay) or − 70 (IPv6), as the kernel itself
 * picks for a VXLAN device on a lower device.
 */
export function computeVxlanMtu(underlayMtu: number, underlayFamily: 4 | 6): number {
  if (!Number.isInteger(underlayMtu) || underlayMtu < 576 || underlayMtu > 65535)
    throw errors.badOption(`invalid underlay MTU ${underlayMtu}: use 576-65535`);
  return underlayMtu - (underlayFamily === 4 ? 50 : 70);
}
