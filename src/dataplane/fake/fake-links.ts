/**
 * The fake's links: bridges and veths as plain objects, under the same ownership rules as the
 * Linux dataplane (marks, refusal of foreign links, "gone" is success, no veth re-created
 * after Join), and the drift tests inflict on them.
 */

import type { ObservedLink } from '../../core/contracts.ts';
import type { BridgeObject, VethObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { isTrussLinkName, shortId } from '../../core/naming.ts';
import { KernelError } from '../linux/exec.ts';
import { endpointDisconnected } from '../linux/veth.ts';
import { clone, FakeCalls } from './fake-calls.ts';

export interface FakeLink {
  name: string;
  ifindex: number;
  kind: string;
  mark?: { kind: 'br' | 'ep'; id: string; state?: string };
  /** a label someone else put on a foreign link */
  alias?: string;
  mtu: number;
  up: boolean;
  master?: string;
  mac: string;
  addresses: string[];
  /** veth: the other end's name */
  peer?: string;
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export class FakeLinks extends FakeCalls {
  readonly links = new Map<string, FakeLink>();
  #nextIndex = 2;

  /** A link truss did not make, under any name (e.g. one of ours): ensure must refuse it. */
  addForeignLink(name: string, kind = 'bridge', alias?: string): FakeLink {
    const l: FakeLink = {
      name,
      ifindex: this.#nextIndex++,
      kind,
      mtu: 1500,
      up: true,
      mac: this.#mac(),
      addresses: [],
    };
    if (alias !== undefined) l.alias = alias;
    this.links.set(name, l);
    return l;
  }

  /** Drift: a link vanishes (with its veth peer), as if an admin deleted it. */
  deleteBehindBack(name: string): void {
    const l = this.links.get(name);
    if (l?.peer) this.links.delete(l.peer);
    this.links.delete(name);
  }

  /** Docker's part of Join: the peer leaves the host namespace for the container. */
  movePeerToContainer(peer: string): void {
    const p = this.links.get(peer);
    const host = p?.peer ? this.links.get(p.peer) : undefined;
    if (host) delete host.peer;
    this.links.delete(peer);
  }

  #mac(): string {
    const n = this.#nextIndex;
    return `02:fa:4e:00:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
  }

  async listLinks(): Promise<readonly ObservedLink[]> {
    this.enter('listLinks', undefined);
    return [...this.links.values()]
      .filter((l) => l.mark !== undefined || isTrussLinkName(l.name))
      .sort(byName)
      .map(({ alias: _a, peer: _p, ...rest }) => clone(rest));
  }

  async ensureBridge(b: BridgeObject): Promise<void> {
    this.enter('ensureBridge', b);
    const cur = this.links.get(b.name);
    if (cur && !(cur.kind === 'bridge' && cur.mark?.kind === 'br' && cur.mark.id === b.networkId)) {
      throw errors.kernelObjectForeign(
        `network ${shortId(b.networkId)}: interface ${b.name} already exists and is not truss's bridge for it`,
      );
    }
    const l = cur ?? { name: b.name, ifindex: this.#nextIndex++, kind: 'bridge', mac: this.#mac() };
    this.links.set(b.name, {
      ...l,
      mark: { kind: 'br', id: b.networkId },
      mtu: b.mtu,
      mac: b.mac,
      up: true,
      addresses: [...b.addresses],
    });
  }

  async removeBridge(name: string): Promise<void> {
    this.enter('removeBridge', name);
    if (this.links.get(name)?.mark?.kind !== 'br') return;
    this.links.delete(name);
    for (const l of this.links.values()) if (l.master === name) delete l.master;
  }

  async ensureVeth(v: VethObject): Promise<void> {
    this.enter('ensureVeth', v);
    const cur = this.links.get(v.name);
    if (!cur) {
      if (v.joined) throw endpointDisconnected(v);
      if (!this.links.has(v.bridge)) {
        throw new KernelError(
          'ENODEV',
          ['ip', '-batch', '-'],
          1,
          `Cannot find device "${v.bridge}"\nCommand failed -:2`,
        );
      }
      if (this.links.has(v.peer)) {
        throw new KernelError('EEXIST', ['ip', '-batch', '-'], 2, 'RTNETLINK answers: File exists\nCommand failed -:1');
      }
      this.links.set(v.peer, {
        name: v.peer,
        ifindex: this.#nextIndex++,
        kind: 'veth',
        mtu: v.mtu,
        up: false,
        mac: v.peerMac,
        addresses: [],
        peer: v.name,
      });
    }
    const owned =
      cur?.kind === 'veth' &&
      (cur.mark ? cur.mark.kind === 'ep' && cur.mark.id === v.endpointId : !cur.alias && isTrussLinkName(cur.name));
    if (cur && !owned) {
      throw errors.kernelObjectForeign(`endpoint ${shortId(v.endpointId)}: interface ${v.name} already exists`);
    }
    const l = cur ?? {
      name: v.name,
      ifindex: this.#nextIndex++,
      kind: 'veth',
      mac: this.#mac(),
      addresses: [],
      peer: v.peer,
    };
    this.links.set(v.name, { ...l, mark: { kind: 'ep', id: v.endpointId }, mtu: v.mtu, up: true, master: v.bridge });
  }

  async removeVeth(name: string): Promise<void> {
    this.enter('removeVeth', name);
    const cur = this.links.get(name);
    const owned = cur?.kind === 'veth' && (cur.mark ? cur.mark.kind === 'ep' : !cur.alias && isTrussLinkName(name));
    if (!owned) return;
    this.deleteBehindBack(name);
  }
}
