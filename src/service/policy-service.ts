/**
 * PolicyService: port policy at run time (`truss policy set/clear/show`). A network's
 * run-time policy is stored apart from its creation intent; the reconciler programs every
 * joined endpoint that inherits it, and set() answers once the kernel has it.
 */

import { effectiveIngress } from '../core/desired.ts';
import { errors } from '../core/errors.ts';
import type { NetworkId } from '../core/ids.ts';
import { type NamedEndpoint, selects } from '../core/names/model.ts';
import { shortId } from '../core/naming.ts';
import { type IngressPolicy, OPT_INGRESS } from '../core/policy/model.ts';
import { formatIngress, formatRule, parseIngress } from '../core/policy/parse.ts';
import type { PolicyView } from '../core/policy/view.ts';
import { type Capabilities, requireFeature } from '../core/preflight.ts';
import type { Logger } from '../obs/logger.ts';
import type { Reconciler } from '../reconcile/reconciler.ts';
import type { IntentRepo } from './intent.ts';

export interface PolicyServiceDeps {
  readonly repo: IntentRepo;
  readonly reconciler: Pick<Reconciler, 'waitFor' | 'policyCounters'>;
  readonly log: Logger;
  readonly programTimeoutMs?: number;
  /** what the host lacks (preflight.ts): a policy without conntrack is refused before it is stored */
  readonly capabilities?: Capabilities;
  /** the catalog of named endpoints (core/names): what show() says each name=/label= rule matches now */
  readonly names?: () => readonly NamedEndpoint[];
}

type SelectorRules = NonNullable<PolicyView['selectorRules']>;

/** Each distinct name=/label= rule of `policies`, with the catalog's containers it selects. */
function selectorRules(policies: readonly IngressPolicy[], names: readonly NamedEndpoint[]): SelectorRules {
  const out = new Map<string, SelectorRules[number]>();
  for (const rules of policies) {
    for (const r of rules) {
      if (r.peer === undefined) continue;
      const rule = formatRule(r);
      if (out.has(rule)) continue;
      const peer = r.peer;
      const matches = names
        .filter((e) => selects(peer, e))
        .map((e) => ({ name: e.name, node: e.node, addresses: [...e.addresses] }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
      out.set(rule, { rule, matches });
    }
  }
  return [...out.values()];
}

export type { PolicyView };

export class PolicyService {
  readonly #d: PolicyServiceDeps;
  constructor(deps: PolicyServiceDeps) {
    this.#d = deps;
  }

  async show(networkId: NetworkId): Promise<PolicyView> {
    const net = await this.#network(networkId);
    const runtime = await this.#d.repo.getPolicy(net.id);
    const counters = await this.#d.reconciler.policyCounters();
    const level = runtime !== undefined ? runtime.ingress : (net.ingress ?? null);
    const source =
      runtime !== undefined ? (runtime.ingress === null ? 'open' : 'runtime') : net.ingress ? 'created' : 'open';
    const records = await this.#d.repo.listEndpoints(net.id);
    const endpoints = records.map((e) => {
      const rules = effectiveIngress(net, e, runtime);
      return {
        endpointId: e.id,
        addresses: [e.ipv4, e.ipv6].filter((a): a is string => a !== undefined),
        ingress: rules === undefined ? null : formatIngress(rules),
        override: e.ingress !== undefined,
        joined: e.sandboxKey !== undefined,
        denied: counters[e.id] ?? { packets: 0, bytes: 0 },
      };
    });
    const view: PolicyView = {
      networkId: net.id,
      ingress: level === null ? null : formatIngress(level),
      source,
      endpoints,
    };
    const policies = [
      ...(level === null ? [] : [level]),
      ...records.flatMap((e) => (e.ingress === undefined ? [] : [e.ingress])),
    ];
    const selectorsInForce = selectorRules(policies, this.#d.names?.() ?? []);
    return selectorsInForce.length > 0 ? { ...view, selectorRules: selectorsInForce } : view;
  }

  /** Set (text) or clear (null) the network-level policy; resolves once it is programmed. */
  async set(networkId: NetworkId, text: string | null): Promise<PolicyView> {
    const net = await this.#network(networkId);
    const ingress = text === null ? null : parseIngress(OPT_INGRESS, text);
    if (ingress !== null) requireFeature(this.#d.capabilities, 'port-policy', 'truss policy set --ingress');
    const revision = await this.#d.repo.putPolicy({ networkId: net.id, ingress });
    const affected = (await this.#d.repo.listEndpoints(net.id)).filter(
      (e) => e.sandboxKey !== undefined && e.ingress === undefined,
    );
    await this.#d.reconciler.waitFor(revision, { network: net.id }, this.#d.programTimeoutMs ?? 15_000);
    this.#d.log.info('network policy set', {
      nid: shortId(net.id),
      ingress: ingress === null ? null : formatIngress(ingress),
      endpoints: affected.length,
    });
    return this.show(networkId);
  }

  async #network(networkId: NetworkId) {
    const net = await this.#d.repo.getNetwork(networkId);
    if (!net) throw errors.networkNotFound(`network ${shortId(networkId)} is not a truss network on this host`);
    return net;
  }
}
