import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeDesired } from '../../core/desired.ts';
import { computeEgress, egressTable } from '../../core/egress.ts';
import type { NetworkSpec } from '../../core/model.ts';
import { ipamData, networkSpec } from '../../core/testing.ts';
import {
  type EgressState,
  ensureEgress,
  parseEgressRoutesJson,
  parseRulesJson,
  planEgress,
  routeLine,
  ruleLine,
} from './egress.ts';
import { type Exec, KernelError } from './exec.ts';
import { renderNftRuleset } from './nft.ts';

const ID = `740001${'0'.repeat(58)}`;
const T = egressTable(ID); // 1946157057
const BR = 'trb740001000000';
const spec = (via: string[]): NetworkSpec =>
  networkSpec({
    id: ID,
    bridge: BR,
    ipv4: [ipamData('198.18.40.0/24')],
    ipv6: [ipamData('fd00:40::/64')],
    egressVia: via,
  });

// `ip -j rule show` / `ip -j route show table all proto 116` (real output, iproute2 6.1, kernel 6.18)
const RULES4 =
  '[{"priority":0,"src":"all","table":"local"},{"priority":11600,"src":"198.18.40.5","table":"main","protocol":"116"},' +
  `{"priority":11610,"src":"198.18.40.0","srclen":24,"table":"${T}","protocol":"116"},` +
  '{"priority":100,"src":"198.19.128.0","srclen":17,"table":"100"},{"priority":32766,"src":"all","table":"main"}]';
const ROUTES4 =
  `[{"dst":"default","gateway":"198.18.40.5","dev":"${BR}","table":"${T}","flags":[]},` +
  `{"type":"unreachable","dst":"default","table":"${T}","metric":4294967295,"flags":[]},` +
  `{"dst":"198.18.40.0/24","dev":"${BR}","table":"${T}","scope":"link","flags":[]},` +
  '{"dst":"198.18.211.0/24","dev":"trwg0","scope":"link","flags":[]}]';
const ROUTES6 =
  `[{"dst":"fd00:40::/64","dev":"${BR}","table":"${T}","metric":1024,"flags":[],"pref":"medium"},` +
  `{"type":"unreachable","dst":"default","dev":"lo","table":"${T}","metric":4294967295,"flags":[],"pref":"medium"}]`;

describe('egress: parsing the kernel', () => {
  it('rules: only protocol 116, canonical CIDRs', () => {
    assert.deepEqual(parseRulesJson(RULES4, 4), [
      { family: 4, priority: 11600, from: '198.18.40.5/32', table: 'main' },
      { family: 4, priority: 11610, from: '198.18.40.0/24', table: T },
    ]);
    assert.deepEqual(parseRulesJson('', 6), []);
  });
  it('routes: only the reserved tables (not the cluster routes of main); IPv6 metric 1024 is the default', () => {
    assert.deepEqual(parseEgressRoutesJson(ROUTES4, 4), [
      { family: 4, table: T, dst: '0.0.0.0/0', dev: BR, via: '198.18.40.5' },
      { family: 4, table: T, dst: '0.0.0.0/0', metric: 4294967295, unreachable: true },
      { family: 4, table: T, dst: '198.18.40.0/24', dev: BR },
    ]);
    assert.deepEqual(parseEgressRoutesJson(ROUTES6, 6), [
      { family: 6, table: T, dst: 'fd00:40::/64', dev: BR },
      { family: 6, table: T, dst: '::/0', metric: 4294967295, unreachable: true },
    ]);
  });
});

describe('egress: planning', () => {
  const empty: EgressState = { rules: [], routes: [] };
  const current = (): EgressState => ({
    rules: [...parseRulesJson(RULES4, 4)],
    routes: [...parseEgressRoutesJson(ROUTES4, 4), ...parseEgressRoutesJson(ROUTES6, 6)],
  });

  it('from nothing: subnets and fallback, then rules, then the next hop last; one batch per family', () => {
    const plan = planEgress(empty, computeEgress([spec(['198.18.40.5', 'fd00:40::9'])]));
    assert.deepEqual(
      plan.ensure[0]?.batches.map((b) => b.family),
      [4, 6],
    );
    assert.deepEqual(plan.ensure[0]?.batches[0]?.lines, [
      `route replace 198.18.40.0/24 dev ${BR} table ${T} proto 116`,
      `route replace unreachable 0.0.0.0/0 table ${T} metric 4294967295 proto 116`,
      'rule add from 198.18.40.5/32 lookup main priority 11600 proto 116',
      `rule add from 198.18.40.0/24 lookup ${T} priority 11610 proto 116`,
      `route replace 0.0.0.0/0 via 198.18.40.5 dev ${BR} table ${T} proto 116`,
    ]);
    assert.equal(
      plan.ensure[0]?.batches[1]?.lines.at(-1),
      `route replace ::/0 via fd00:40::9 dev ${BR} table ${T} proto 116`,
    );
    assert.deepEqual(plan.remove, []);
  });
  it('in sync: nothing to run; IPv6 leftovers of the table are removed', () => {
    const plan = planEgress(current(), computeEgress([spec(['198.18.40.5'])]));
    assert.deepEqual(plan.ensure, []);
    assert.deepEqual(plan.remove, [
      {
        family: 6,
        lines: [
          `route del fd00:40::/64 table ${T} metric 1024 proto 116`,
          `route del unreachable ::/0 table ${T} metric 4294967295 proto 116`,
        ],
      },
    ]);
  });
  it('another next hop: only the via route is replaced, the exemption of the old one goes', () => {
    const plan = planEgress(current(), computeEgress([spec(['198.19.251.2', 'fd00:40::5'])]));
    assert.deepEqual(plan.ensure[0]?.batches, [
      { family: 4, lines: [`route replace 0.0.0.0/0 via 198.19.251.2 table ${T} proto 116`] },
      {
        family: 6,
        lines: [
          'rule add from fd00:40::5/128 lookup main priority 11600 proto 116',
          `rule add from fd00:40::/64 lookup ${T} priority 11610 proto 116`,
          `route replace ::/0 via fd00:40::5 dev ${BR} table ${T} proto 116`,
        ],
      },
    ]);
    assert.deepEqual(plan.remove, [
      { family: 4, lines: ['rule del from 198.18.40.5/32 lookup main priority 11600 proto 116'] },
    ]);
  });
  it('nothing wanted: rules first, then every route of the reserved tables', () => {
    const plan = planEgress(current(), { networks: [] });
    assert.deepEqual(plan.ensure, []);
    const v4 = plan.remove[0]?.lines ?? [];
    assert.deepEqual(v4.slice(0, 2), [
      'rule del from 198.18.40.5/32 lookup main priority 11600 proto 116',
      `rule del from 198.18.40.0/24 lookup ${T} priority 11610 proto 116`,
    ]);
    assert.equal(v4.length, 2 + 3);
    assert.equal(plan.remove[1]?.lines.length, 2);
    assert.ok(v4.slice(2).every((l) => l.startsWith('route del ') && l.includes(`table ${T}`)));
  });
  it('routed mode: a throw route is read, rendered and kept apart from a unicast one', () => {
    const json = `[{"type":"throw","dst":"fd00:40::/64","dev":"lo","table":"${T}","metric":1024,"flags":[]}]`;
    const have = parseEgressRoutesJson(json, 6);
    assert.deepEqual(have, [{ family: 6, table: T, dst: 'fd00:40::/64', throw: true }]);
    const want = { family: 4 as const, table: T, dst: '198.18.40.0/24', throw: true };
    assert.equal(routeLine('replace', want), `route replace throw 198.18.40.0/24 table ${T} proto 116`);
    assert.equal(routeLine('del', want), `route del 198.18.40.0/24 table ${T} proto 116`);
  });
  it('refuses to render outside the reserved range or with a bad name', () => {
    assert.throws(() => routeLine('del', { family: 4, table: 254, dst: '0.0.0.0/0' }), /outside truss's range/);
    assert.throws(() => routeLine('replace', { family: 4, table: T, dst: '0.0.0.0/0', dev: 'a;b' }));
    assert.throws(() => ruleLine('add', { family: 4, priority: 11610, from: '198.18.40.1/24', table: T }), /CIDR/);
  });
});

/** An Exec that answers the four listings from `state` and records batches; `fail` fails a batch line. */
function fakeExec(fail?: (stdin: string) => KernelError | undefined, noV6 = false): Exec & { batches: string[] } {
  const batches: string[] = [];
  return {
    batches,
    which: (b) => b,
    async run(_bin, args, opts) {
      if (noV6 && args.includes('-6')) {
        throw new KernelError(
          'OTHER',
          ['ip', ...args],
          2,
          'RTNETLINK answers: Address family not supported by protocol',
        );
      }
      if (args.includes('-batch')) {
        assert.ok(args[0] === '-4' || args[0] === '-6', 'every batch names its family');
        const stdin = opts?.stdin ?? '';
        batches.push(stdin);
        const e = fail?.(stdin);
        if (e) throw e;
        return { stdout: '', stderr: '' };
      }
      return { stdout: '[]', stderr: '' };
    },
  };
}

describe('egress: ensure', () => {
  it('a next hop the kernel refuses becomes an option error naming it; other networks are still programmed', async () => {
    const other = { ...spec(['198.19.251.2']), id: `750002${'0'.repeat(58)}`, bridge: 'trb750002000000' };
    const exec = fakeExec((stdin) =>
      stdin.includes('via 198.19.9.9')
        ? new KernelError('EINVAL', ['ip', '-batch', '-'], 1, 'Error: Nexthop has invalid gateway.\nCommand failed -:4')
        : undefined,
    );
    await assert.rejects(
      ensureEgress(exec, computeEgress([spec(['198.19.9.9']), other])),
      (e: Error & { code?: string }) =>
        e.code === 'TRUSS_ERR_ADDRESS_INVALID' && /next hop 198\.19\.9\.9 \(truss\.egress\.via\)/.test(e.message),
    );
    assert.equal(exec.batches.length, 2, 'the second network got its own batch');
  });
  it('a host without IPv6: IPv4-only next hops work, an IPv6 one fails loudly', async () => {
    const v4only = { ...spec(['198.19.251.2']), ipv6: [] };
    const exec = fakeExec(undefined, true);
    await ensureEgress(exec, computeEgress([v4only]));
    await ensureEgress(exec, { networks: [] });
    await assert.rejects(ensureEgress(exec, computeEgress([spec(['fd00:40::9'])])), /Address family/);
  });
});

describe('egress: the firewall lets what is routed to the next hop leave', () => {
  it('renders one rt nexthop accept per next hop, after the same-network accept, before the drops', () => {
    const fw = computeDesired([spec(['198.19.251.2', 'fd00:40::9'])], []).firewall;
    const text = renderNftRuleset(fw);
    const chain = text.slice(text.indexOf('chain net_740001000000'));
    const lines = chain.split('\n').map((l) => l.trim());
    const at = (needle: string) => lines.findIndex((l) => l.startsWith(needle));
    assert.ok(at('rt ip nexthop 198.19.251.2 accept') > at('oifname "trb740001000000" accept'));
    assert.ok(at('rt ip6 nexthop fd00:40::9 accept') > 0);
    assert.ok(at('rt ip6 nexthop fd00:40::9 accept') < at('oifname @bridges drop'));
    assert.ok(!renderNftRuleset(computeDesired([{ ...spec([]), egressVia: [] }], []).firewall).includes('nexthop'));
  });
});
