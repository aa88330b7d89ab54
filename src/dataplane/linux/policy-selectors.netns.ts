/**
 * Kernel tests (root) for port policy by container name or label, with REAL TRAFFIC: three
 * "containers" on one truss network, B with a policy whose sources are a selector's shared sets.
 *
 *   A 198.18.41.2 fd00:41::2 ─┐
 *   B 198.18.41.3 fd00:41::3 ─┼─ trb… 198.18.41.1 fd00:41::1 (host)
 *   C 198.18.41.4 fd00:41::4 ─┘
 *
 * Run: TRUSS_TEST_NS_PREFIX=sel- node --test src/dataplane/linux/policy-selectors.netns.ts
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyObject, SelectorSetObject } from '../../core/desired.ts';
import type { EndpointSpec } from '../../core/model.ts';
import type { PeerSelector } from '../../core/names/model.ts';
import { policyChainName, selectorSetName } from '../../core/naming.ts';
import { OPT_INGRESS } from '../../core/policy/model.ts';
import { parseIngress } from '../../core/policy/parse.ts';
import { isKernelError } from './exec.ts';
import type { LinuxDataplane } from './linux-dataplane.ts';
import {
  type Ctr,
  createScratch,
  listTestNamespaces,
  pingOk,
  randomId,
  serveHi,
  simulatedHost,
  type TestNs,
  tcpHi,
  testEndpoint,
  testNetwork,
} from './netns-testutil.ts';

const API: PeerSelector = { by: 'name', glob: 'api-*' };
const SEL = selectorSetName(API);

describe('port policy by name/label with real traffic (kernel)', () => {
  const scratch = createScratch();
  let host: TestNs;
  let dp: LinuxDataplane;
  const N = randomId();
  const net = testNetwork(N, 41, { v6: true });
  const eps: Record<'a' | 'b' | 'c', EndpointSpec> = { a: testEndpoint(N), b: testEndpoint(N), c: testEndpoint(N) };
  const ctr = {} as Record<'a' | 'b' | 'c', Ctr>;
  const TEXT = 'tcp/8080@name=api-*,tcp/9000-9100@name=api-*,icmp@name=api-*,udp/53@label=role=dns';
  const policyB = (text = TEXT): PolicyObject => ({
    name: policyChainName(eps.b.id),
    endpointId: eps.b.id,
    networkId: N,
    addresses: [ctr.b.ip, ctr.b.ip6 as string],
    rules: parseIngress(OPT_INGRESS, text),
  });
  const members = (...cs: Ctr[]): SelectorSetObject => ({
    name: SEL,
    selector: API,
    addresses4: cs.map((c) => c.ip),
    addresses6: cs.map((c) => c.ip6 as string),
  });
  const listing = (): Promise<string> => host.must(['nft', 'list', 'table', 'inet', 'truss_policy']);

  before(async () => {
    const h = await simulatedHost(scratch, { networks: [net], endpoints: Object.values(eps), dockerd: 'nf-on' });
    ({ ns: host, dp } = h);
    const join = async (k: 'a' | 'b' | 'c', n: number): Promise<void> => {
      ctr[k] = await h.join(k, eps[k], `198.18.41.${n}/24`, '198.18.41.1', [`fd00:41::${n}/64`, 'fd00:41::1']);
    };
    await join('a', 2);
    await join('b', 3);
    await join('c', 4);
    await h.ensureFirewall();
    scratch.proc(serveHi(ctr.b.ns, 8080));
    scratch.proc(serveHi(ctr.b.ns, 9050));
    await sleep(200);
  });

  it('a chain naming a missing selector creates its sets empty: nobody is admitted yet', async () => {
    await dp.ensurePolicy(policyB());
    assert.match(await listing(), new RegExp(`set ${SEL}_4 \\{\\s+type ipv4_addr\\s+\\}`));
    assert.deepEqual(await Promise.all([tcpHi(ctr.a, ctr.b.ip, 8080), tcpHi(ctr.c, ctr.b.ip, 8080)]), [false, false]);
  });

  it('a source in the set is admitted on its ports (v4 and v6, echo too); one not in it is refused', async () => {
    await dp.ensureSelector(members(ctr.a));
    const b6 = ctr.b.ip6 as string;
    const got = await Promise.all([
      tcpHi(ctr.a, ctr.b.ip, 8080),
      tcpHi(ctr.a, b6, 8080),
      tcpHi(ctr.a, ctr.b.ip, 9050),
      pingOk(ctr.a, ctr.b.ip),
      tcpHi(ctr.c, ctr.b.ip, 8080),
      tcpHi(ctr.c, b6, 8080),
      pingOk(ctr.c, ctr.b.ip),
    ]);
    assert.deepEqual(got, [true, true, true, true, false, false, false]);
  });

  it('the drift checks are clean after ensure (policy chain and selector sets as nft lists them)', async () => {
    const dns = selectorSetName({ by: 'label', key: 'role', value: 'dns' });
    const want = [
      members(ctr.a),
      { name: dns, selector: { by: 'label', key: 'role', value: 'dns' }, addresses4: [], addresses6: [] } as const,
    ];
    assert.deepEqual(await dp.checkPolicies([policyB()]), { drifted: [], extra: [], problems: [], tablePresent: true });
    assert.deepEqual(await dp.checkSelectors(want), { drifted: [], extra: [], problems: [], tablePresent: true });
  });

  it('updating the membership flips the verdict', async () => {
    await dp.ensureSelector(members(ctr.c));
    assert.deepEqual(await Promise.all([tcpHi(ctr.a, ctr.b.ip, 8080), tcpHi(ctr.c, ctr.b.ip, 8080)]), [false, true]);
    await dp.ensureSelector(members(ctr.a));
    assert.deepEqual(await Promise.all([tcpHi(ctr.a, ctr.b.ip, 8080), tcpHi(ctr.c, ctr.b.ip, 8080)]), [true, false]);
  });

  it('a rewrite is atomic: 50 rewrites that keep A, under a hammer of new connections from A, drop none', async (t) => {
    // the verdict is B's denied counter: every new flow from A meets B's chain, and a packet that
    // found the set without A would be counted by its drop rule. (busybox nc itself fails a
    // connection now and then, rewrites or not: those are told, not judged.)
    const denied = async (): Promise<number> => (await dp.readPolicyCounters())[policyB().name]?.packets ?? -1;
    let done = false;
    let ok = 0;
    let failed = 0;
    const hammer = async (): Promise<void> => {
      while (!done) {
        if (await tcpHi(ctr.a, ctr.b.ip, 8080)) ok++;
        else failed++;
      }
    };
    const d0 = await denied();
    const workers = [hammer(), hammer(), hammer(), hammer()];
    await sleep(100);
    for (let i = 0; i < 50; i++) {
      // the other members change every time, so each rewrite really empties and refills the set
      const extra = Array.from({ length: 200 }, (_, k) => `198.19.${i}.${k + 1}`);
      await dp.ensureSelector({ ...members(ctr.a), addresses4: [ctr.a.ip, ...extra] });
    }
    done = true;
    await Promise.all(workers);
    t.diagnostic(`${ok} connections from A during 50 rewrites (${failed} failed in nc, not in the policy)`);
    assert.equal((await denied()) - d0, 0, "B's chain dropped packets during the rewrites");
    assert.ok(ok >= 20, `only ${ok} connections made during the rewrites`);
  });

  it('the drift check reports a member deleted behind its back; ensure restores it', async () => {
    await dp.ensureSelector(members(ctr.a));
    await host.must(['nft', 'delete', 'element', 'inet', 'truss_policy', `${SEL}_4`, `{ ${ctr.a.ip} }`]);
    const check = await dp.checkSelectors([members(ctr.a)]);
    assert.deepEqual(check.drifted, [SEL]);
    // (the label=role=dns selector of B's chain is not in this check's list: it shows as extra)
    assert.deepEqual(
      check.problems.filter((p) => p.includes(SEL)),
      [`selector ${SEL} (name=api-*): set ${SEL}_4 lacks ${ctr.a.ip}`],
    );
    const count = async (): Promise<number> => (await dp.readPolicyCounters())[policyB().name]?.packets ?? -1;
    const before = await count();
    assert.equal(await tcpHi(ctr.a, ctr.b.ip, 8080), false);
    assert.ok((await count()) > before, 'the denied counter sees a refused member (what the atomicity test relies on)');
    await dp.ensureSelector(members(ctr.a));
    assert.deepEqual((await dp.checkSelectors([members(ctr.a)])).drifted, []);
    assert.equal(await tcpHi(ctr.a, ctr.b.ip, 8080), true);
  });

  it('a set stays while a chain names it; once the last chain is gone, removing it leaves nothing', async () => {
    await assert.rejects(dp.removeSelector(SEL), (e) => isKernelError(e));
    assert.match(await listing(), new RegExp(`set ${SEL}_4`));
    // the chain no longer names it (slow-ish: conntrack cuts the hammer's flows one by one)
    await dp.ensurePolicy(policyB('tcp/80'));
    await dp.removeSelector(SEL);
    await dp.removeSelector(SEL);
    assert.doesNotMatch(await listing(), new RegExp(SEL));
    const extra = await dp.checkSelectors([]);
    assert.ok(
      extra.extra.every((n) => n !== SEL),
      JSON.stringify(extra),
    );
    await dp.removePolicyTable();
    await dp.removeSelector(SEL); // no table: gone already
  });
});

describe('port policy by name/label (kernel) cleanup', () => {
  it('leaves no test namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
