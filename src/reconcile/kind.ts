/**
 * The contract every kind of kernel object the engine programs implements (Felix's per-table
 * resync/apply contract; Cilium statedb's registered operations). A kind says what it wants from
 * the desired state D of a pass, how to look at the kernel, and how to ensure and remove; the
 * engine (engine.ts) decides when, records what was applied, keeps status and retries.
 *
 * Two shapes:
 *   - a set: objects keyed by name (bridges, veths, policy chains, guards, ...), each with its
 *     own status key `${kind.name}:${obj.name}`;
 *   - a whole object: one value or nothing (the firewall, a cluster device, the route set).
 */

import type { SetCheck } from '../core/contracts.ts';

export interface Named {
  readonly name: string;
}

/**
 * What one look at the kernel says about a set kind: the dataplane's SetCheck, of which a kind
 * that computes its own view (bridges, veths) may give only the problems.
 */
export type KindCheck = Pick<SetCheck, 'problems'> & Partial<SetCheck>;

/**
 * What a request waits for: everything the intent of one network (its bridge, its part of the
 * firewall, its endpoints' objects) or of one endpoint derives.
 */
export type Owner = { readonly network: string } | { readonly endpoint: string };

/** Ownership of an object that carries the ids it was derived from. */
export function ownedBy(o: { readonly networkId: string; readonly endpointId?: string }, owner: Owner): boolean {
  return 'network' in owner ? o.networkId === owner.network : o.endpointId === owner.endpoint;
}

interface KindBase<D> {
  /** the status key (whole kinds) or key prefix (set kinds): unique in a registry */
  readonly name: string;
  /**
   * A reason to leave this kind exactly as it is in this pass (the cluster before its first
   * sync: never prune peers from a view not read yet). `truss status` shows the reason.
   */
  paused?(desired: D): string | undefined;
  /**
   * Its check reads only what the kernel announces changes of (links, addresses, routes, rules,
   * nftables: dataplane/linux/kernel-watch.ts): a check may answer from the last look while no
   * change was announced and no pass ran since. Not so: qdiscs, WireGuard peers, FDB, neighbours.
   */
  readonly watched?: boolean;
}

export interface SetKind<D, T extends Named> extends KindBase<D> {
  readonly shape: 'set';
  wanted(desired: D): readonly T[];
  /**
   * The kernel's view (one listing). Undefined: it could not be read (nothing is adopted, the
   * pass goes on); throwing is the same and the error shows in `truss status`.
   */
  check(wanted: readonly T[], desired: D): Promise<KindCheck | undefined>;
  /** replace: something of it is installed (changed or drifted); exact: the check asked for it */
  ensure(obj: T, how: { readonly replace: boolean; readonly exact: boolean }): Promise<void>;
  remove(name: string, applied: T | undefined): Promise<void>;
  /** whether `obj` is part of what `owner`'s intent derives (waitFor by owner) */
  owns?(obj: T, owner: Owner): boolean;
  /** the status key of the object this one needs: not attempted when that failed in the same pass */
  needs?(obj: T): string | undefined;
  /**
   * When unwanted objects go: 'before' additions (a key a leaving endpoint holds may be wanted
   * by a new one), 'after' them (default), or 'last', after every kind, in reverse registry order
   * (a veth before its bridge).
   */
  readonly removeAt?: 'before' | 'after' | 'last';
  /** the shared table the objects live in, removed with the last of them */
  readonly table?: { readonly key: string; remove(): Promise<void> };
  /**
   * true: objects the check finds beyond the intent may belong to another state and are pruned
   * only while no foreign object is present. false: the check already excluded those.
   */
  readonly extrasMayBeForeign?: boolean;
}

export interface WholeKind<D, T> extends KindBase<D> {
  readonly shape: 'whole';
  /** undefined: the object must not exist */
  wanted(desired: D): T | undefined;
  /** problems with the kernel's object (want undefined: that it still exists) */
  check(want: T | undefined, desired: D): Promise<readonly string[]>;
  ensure(want: T): Promise<void>;
  remove(): Promise<void>;
  /** whether `want` carries part of `owner`'s intent (waitFor by owner) */
  owns?(want: T, owner: Owner): boolean;
  /** status keys this object needs (routes need their devices) */
  readonly needs?: readonly string[];
  /**
   * The kernel cannot tell whether the object is absent: with nothing wanted, a full pass
   * removes it without looking (remove is idempotent), counted as a change only when it was made.
   */
  readonly blindRemoval?: boolean;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds kinds of every object type
export type Kind<D> = SetKind<D, any> | WholeKind<D, any>;

/** The status key of one object of a set kind. */
export const objectKey = (kind: string, name: string): string => `${kind}:${name}`;

/** The status keys of the objects `owner`'s intent derives in a pass over `desired`. */
export function ownedKeys<D>(kinds: readonly Kind<D>[], owner: Owner, desired: D): string[] {
  const keys: string[] = [];
  for (const kind of kinds) {
    if (!kind.owns || kind.paused?.(desired) !== undefined) continue;
    if (kind.shape === 'whole') {
      const want = kind.wanted(desired);
      if (want !== undefined && kind.owns(want, owner)) keys.push(kind.name);
    } else for (const o of kind.wanted(desired)) if (kind.owns(o, owner)) keys.push(objectKey(kind.name, o.name));
  }
  return keys;
}
