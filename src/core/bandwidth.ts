/**
 * Bandwidth limits (`truss.bandwidth`, `truss.bandwidth.ingress`): rate syntax, which limit
 * an endpoint gets, and the token-bucket parameters that shape it. Pure.
 *
 * Directions are the container's, as in the CNI bandwidth plugin and Calico:
 *   - egress (`truss.bandwidth`): what the container sends. Shaped on the way in to the host
 *     end of its veth, redirected to an ifb device with a tbf on it.
 *   - ingress (`truss.bandwidth.ingress`): what the container receives. Shaped by a tbf as the
 *     root qdisc of the host end (the host end's egress).
 * A network's option is the default of each of its containers; an endpoint's --driver-opt
 * replaces it, direction by direction.
 *
 * Rates are bits per second at layer 2 (what tc counts: Ethernet header and all), in SI units
 * like tc: 1kbit = 1000 bit/s. TCP goodput (what iperf3 reports) is about 4 % less at MTU 1500.
 */
import { errors } from './errors.ts';
import { ifbName } from './naming.ts';
import { showValue } from './safe-json.ts';

export const OPT_BANDWIDTH = 'truss.bandwidth';
export const OPT_BANDWIDTH_INGRESS = 'truss.bandwidth.ingress';

/** Below this a single full-size frame takes longer than TCP's minimum RTO to send: TCP stalls. */
export const MIN_RATE = 100_000;
/** tbf's queue limit is a u32 byte count; 100gbit × its latency still fits. */
export const MAX_RATE = 100_000_000_000;

/** A limit per direction, bits per second; absent = unlimited. */
export interface BandwidthLimits {
  readonly egress?: number;
  readonly ingress?: number;
}

/** One token bucket (tc-tbf): rate in bit/s, burst (bucket size) and limit (queue) in bytes. */
export interface TbfParams {
  readonly rate: number;
  readonly burst: number;
  readonly limit: number;
}

/** The kernel objects of one endpoint's limits (desired state); absent when it has none. */
export interface ShaperObject {
  /** the host end of the veth (trv…) the limits sit on */
  readonly name: string;
  /** the ifb device (trf…) that shapes the container's egress */
  readonly ifb: string;
  readonly endpointId: string;
  readonly networkId: string;
  /** what the container sends: ingress of the host end → ifb → tbf */
  readonly egress?: TbfParams;
  /** what the container receives: root tbf of the host end */
  readonly ingress?: TbfParams;
}

const UNITS: Readonly<Record<string, number>> = {
  bit: 1,
  kbit: 1e3,
  mbit: 1e6,
  gbit: 1e9,
};

const RATE = /^([0-9]+)(?:\.([0-9]{1,3}))?([a-z]*)$/;

/** `100mbit`, `1.5gbit`, `500kbit`, `2000000` (bit/s) → bits per second; anything else is refused. */
export function parseRate(key: string, text: string): number {
  const bad = (why: string) =>
    errors.badOption(
      `option ${key}=${showValue(text)}: ${why}; write a rate in bits per second such as 500kbit, 100mbit, 1gbit or 2000000`,
    );
  const m = RATE.exec(text.trim().toLowerCase());
  if (!m || text.trim() !== text) {
    throw bad('not a rate');
  }
  const [, whole, frac, unitText] = m as unknown as [string, string, string | undefined, string];
  const unit = unitText === '' ? 'bit' : unitText;
  const mult = UNITS[unit];
  if (mult === undefined) {
    if (/^[kmgt]?(bps|b|ps)$/.test(unit) || unit === 'tbit') {
      throw bad(`unit "${unitText}" is not accepted (tc's "mbps" means megabytes per second)`);
    }
    throw bad(`unknown unit "${unitText}"`);
  }
  if (frac !== undefined && unitText === '') throw bad('plain bits per second must be a whole number');
  const bits = Math.round((Number(whole) + (frac === undefined ? 0 : Number(`0.${frac}`))) * mult);
  if (!Number.isSafeInteger(bits) || bits < MIN_RATE || bits > MAX_RATE) {
    throw errors.badOption(
      `option ${key}=${text}: the rate must be between ${formatRate(MIN_RATE)} and ${formatRate(MAX_RATE)}`,
    );
  }
  return bits;
}

/** bits per second in the largest unit that divides it: 100000000 → "100mbit". */
export function formatRate(bits: number): string {
  for (const [unit, mult] of [
    ['gbit', 1e9],
    ['mbit', 1e6],
    ['kbit', 1e3],
  ] as const) {
    if (bits % mult === 0) return `${bits / mult}${unit}`;
  }
  return `${bits}bit`;
}

/** The truss.bandwidth* keys of an option map, parsed; undefined when neither is given. */
export function parseBandwidthOptions(map: Readonly<Record<string, unknown>>): BandwidthLimits | undefined {
  const read = (key: string): number | undefined => {
    const v = map[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw errors.badOption(`option ${key}: expected a string value`);
    return parseRate(key, v);
  };
  const egress = read(OPT_BANDWIDTH);
  const ingress = read(OPT_BANDWIDTH_INGRESS);
  if (egress === undefined && ingress === undefined) return undefined;
  return { ...(egress !== undefined ? { egress } : {}), ...(ingress !== undefined ? { ingress } : {}) };
}

/** also the admin API's view of a limit (core/admin-api.ts), whose absent fields may read undefined */
type LooseLimits = { readonly [K in keyof BandwidthLimits]?: BandwidthLimits[K] | undefined };

/** The endpoint's own limit per direction, else its network's. */
export function effectiveBandwidth(
  net: LooseLimits | undefined,
  ep: LooseLimits | undefined,
): BandwidthLimits | undefined {
  const egress = ep?.egress ?? net?.egress;
  const ingress = ep?.ingress ?? net?.ingress;
  if (egress === undefined && ingress === undefined) return undefined;
  return { ...(egress !== undefined ? { egress } : {}), ...(ingress !== undefined ? { ingress } : {}) };
}

/** Ethernet header: tc counts it, the MTU does not. */
const ETH_HEADER = 14;
/**
 * Bucket depth in time at the rate. ≥ 1/HZ (4 ms at HZ=250) so the qdisc watchdog's
 * granularity never starves the bucket; 10 ms lets a TCP window's worth through after a
 * pause at 100 Mbit/s+, and adds only 0.1 % to a 10 s average.
 */
export const BURST_SECONDS = 0.01;
/** The bucket holds at least this many full frames (low rates: smooth ACK clocking, never < 1 frame). */
export const BURST_MIN_FRAMES = 4;
/**
 * Queue depth in time at the rate (the CNI bandwidth plugin's 25 ms latency). Within one host
 * the path's RTT is microseconds, so this is far above the bandwidth-delay product: TCP's
 * window halving after a tail drop still leaves the queue non-empty and the link busy.
 */
export const QUEUE_SECONDS = 0.025;
/** The queue holds at least this many full frames beyond the bucket (low rates). */
export const QUEUE_MIN_FRAMES = 16;
/**
 * ...and room for two 64 KiB GSO packets (a container's TCP hands the veth up to 64 KiB at once),
 * as long as that is no more than 100 ms at the rate. Measured here (iperf3 through ifb + tbf):
 * with 25 ms alone, 20 Mbit/s got 90 % of the rate (a queue smaller than two GSO packets drops
 * whole bursts); a 128 KiB floor at every rate made 1 Mbit/s a 1 s queue and TCP got 84 %;
 * with this rule 1–300 Mbit/s all got 95–100 % (goodput; 95.6 % is all TCP can have at MTU 1500).
 */
export const QUEUE_GSO_BYTES = 2 * 65_536;
export const QUEUE_MAX_SECONDS = 0.1;

/** The token bucket for `rate` (bit/s) on links of `mtu`: burst and queue limit in bytes. */
export function tbfFor(rate: number, mtu: number): TbfParams {
  const frame = mtu + ETH_HEADER;
  const bytesPerSecond = rate / 8;
  const burst = Math.max(Math.ceil(bytesPerSecond * BURST_SECONDS), BURST_MIN_FRAMES * frame);
  const queue = Math.max(
    Math.ceil(bytesPerSecond * QUEUE_SECONDS),
    Math.min(QUEUE_GSO_BYTES, Math.ceil(bytesPerSecond * QUEUE_MAX_SECONDS)),
    QUEUE_MIN_FRAMES * frame,
  );
  return { rate, burst, limit: burst + queue };
}

/** The endpoint's shaper (its limits in force, on its host veth), or undefined when it has none. */
export function shaperFor(
  net: { readonly id: string; readonly mtu: number; readonly bandwidth?: BandwidthLimits },
  ep: { readonly id: string; readonly hostVeth: string; readonly bandwidth?: BandwidthLimits },
): ShaperObject | undefined {
  const limits = effectiveBandwidth(net.bandwidth, ep.bandwidth);
  if (limits === undefined) return undefined;
  return {
    name: ep.hostVeth,
    ifb: ifbName(ep.id),
    endpointId: ep.id,
    networkId: net.id,
    ...(limits.egress !== undefined ? { egress: tbfFor(limits.egress, net.mtu) } : {}),
    ...(limits.ingress !== undefined ? { ingress: tbfFor(limits.ingress, net.mtu) } : {}),
  };
}
