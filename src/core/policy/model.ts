/**
 * Port policy: an ingress allow-list per container. A rule admits new inbound flows of
 * one protocol, optionally to a port or port range, optionally only from one source prefix.
 * Syntax (one form everywhere: -o/--driver-opt truss.ingress=..., truss policy set):
 *   tcp/80  tcp/8000-8100  udp/53  icmp  tcp/5432@198.18.7.0/24  udp/53@fd00:7::/64
 *   tcp/5432@name=api-*  tcp/5432@label=role=api  icmp@label=tier   (sources by container)
 * comma-separated; the single word `none` is the empty list (nothing inbound).
 */
import type { PeerSelector } from '../names/model.ts';

export type PolicyProto = 'tcp' | 'udp' | 'icmp';

export interface PortRange {
  readonly from: number;
  /** equal to `from` for a single port */
  readonly to: number;
}

export interface IngressRule {
  readonly proto: PolicyProto;
  /** absent for icmp */
  readonly ports?: PortRange;
  /** canonical CIDR ("198.18.7.0/24", "fd00:7::/64"); absent (and no peer) = any source */
  readonly source?: string;
  /**
   * the sources are the containers this selects (by name glob or label), wherever they run;
   * never together with `source`
   */
  readonly peer?: PeerSelector;
}

/** An allow-list; `[]` admits nothing new (the `none` policy). */
export type IngressPolicy = readonly IngressRule[];

export const OPT_INGRESS = 'truss.ingress';
