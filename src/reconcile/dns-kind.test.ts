/** The DNS redirection kind (kinds/host.ts dnsKind) over the fake dataplane: wanted, check, ensure, remove. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DesiredKernel, DnsRedirectObject } from '../core/desired.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { DNS_KEY, dnsKind } from './kinds/host.ts';
import type { PassState } from './kinds/pass.ts';

const OBJ: DnsRedirectObject = {
  bridges: [{ bridge: 'trbaaaaaaaaaaaa', gateway4: '198.18.0.1' }],
  upstreams: [{ address: '198.18.91.53', port: 35301 }],
};

const pass = (dnsRedirect?: DnsRedirectObject): PassState =>
  ({ kernel: { ...(dnsRedirect ? { dnsRedirect } : {}) } as DesiredKernel }) as PassState;

describe('dnsKind', () => {
  const dp = new FakeDataplane();
  const kind = dnsKind(dp);

  it('wants the object with a bridge, even before an upstream is known (it learns them)', () => {
    assert.equal(kind.name, DNS_KEY);
    assert.equal(kind.wanted(pass()), undefined);
    const learning: DnsRedirectObject = { bridges: OBJ.bridges, upstreams: [] };
    assert.equal(kind.wanted(pass(learning)), learning);
    assert.equal(kind.wanted(pass({ bridges: [], upstreams: OBJ.upstreams })), undefined);
    assert.equal(kind.wanted(pass(OBJ)), OBJ);
  });

  it('checks, ensures, sees drift, removes; a leftover table is a problem when none is wanted', async () => {
    assert.deepEqual(await kind.check(undefined, pass()), []);
    assert.deepEqual(await kind.check(OBJ, pass(OBJ)), ['nft table inet truss_dns is missing']);
    await kind.ensure(OBJ);
    assert.deepEqual(await kind.check(OBJ, pass(OBJ)), []);
    const more: DnsRedirectObject = { ...OBJ, upstreams: [...OBJ.upstreams, { address: '198.18.91.54', port: 35302 }] };
    assert.equal((await kind.check(more, pass(more))).length, 1);
    assert.equal((await kind.check(undefined, pass())).length, 1);
    await kind.remove();
    assert.deepEqual(await kind.check(undefined, pass()), []);
  });

  it('refuses an invalid object as the Linux dataplane does', async () => {
    const bad = { ...OBJ, bridges: [{ bridge: 'trb"x' }] };
    await assert.rejects(kind.ensure(bad), /invalid interface name/);
    await assert.rejects(kind.check(bad, pass(bad)), /invalid interface name/);
  });
});
