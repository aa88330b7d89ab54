import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VethObject } from '../../core/desired.ts';
import type { Exec } from './exec.ts';
import type { LinkState } from './links.ts';
import { ENDPOINT_DISCONNECTED, endpointDisconnected, planVeth, planVethCreate, VethRemovals } from './veth.ts';

const N = 'a'.repeat(64);
const E = 'e'.repeat(64);
const v: VethObject = {
  name: 'trveeeeeeeeeeee',
  peer: 'trceeeeeeeeeeee',
  networkId: N,
  endpointId: E,
  bridge: 'trbaaaaaaaaaaaa',
  mtu: 1450,
  peerMac: '02:5e:ee:ee:ee:ee',
  joined: false,
};
const observed = (over: Partial<LinkState> = {}): LinkState => ({
  name: v.name,
  ifindex: 9,
  kind: 'veth',
  mark: { kind: 'ep', id: E },
  alias: `truss:ep:${E}`,
  mtu: 1450,
  up: true,
  master: v.bridge,
  mac: '02:00:00:00:00:02',
  addresses: [],
  ...over,
});

describe('planVethCreate', () => {
  it('makes both ends in line 1 and marks/enslaves/raises the host end in line 2', () => {
    assert.deepEqual(planVethCreate(v), [
      'link add trveeeeeeeeeeee mtu 1450 type veth peer name trceeeeeeeeeeee address 02:5e:ee:ee:ee:ee mtu 1450',
      `link set trveeeeeeeeeeee alias truss:ep:${E} master trbaaaaaaaaaaaa up`,
    ]);
  });
  it('refuses a malformed MAC', () => {
    assert.throws(() => planVethCreate({ ...v, peerMac: '02:5e:ee:ee:ee:ee up' }), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
    });
  });
});

describe('planVeth', () => {
  it('is empty when the host end matches', () => assert.deepEqual(planVeth(observed(), v), []));
  it('marks an unmarked truss veth and converges master, MTU and up', () => {
    const { mark: _m, alias: _a, ...bare } = observed();
    assert.deepEqual(planVeth({ ...bare, master: 'trbother0000000', mtu: 1500, up: false }, v), [
      `link set trveeeeeeeeeeee alias truss:ep:${E}`,
      'link set trveeeeeeeeeeee master trbaaaaaaaaaaaa',
      'link set trveeeeeeeeeeee mtu 1450',
      'link set trveeeeeeeeeeee up',
    ]);
  });
});

describe('endpointDisconnected', () => {
  it('is an unavailable TrussError that names the endpoint and what to do', () => {
    const e = endpointDisconnected(v);
    assert.equal(e.code, ENDPOINT_DISCONNECTED);
    assert.equal(e.kind, 'unavailable');
    assert.match(e.message, /endpoint eeeeeeeeeeee .*trveeeeeeeeeeee.*reconnect/);
  });
});

describe('VethRemovals', () => {
  /** An Exec whose `ip link del` waits until released; `ip -j -d addr show` reports an owned veth. */
  function slowExec(fail = false) {
    const calls: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const exec: Exec = {
      which: (b) => b,
      async run(bin, args) {
        calls.push([bin, ...args].join(' '));
        if (args.includes('del')) {
          await gate;
          if (fail) throw new Error('RTNETLINK answers: Device or resource busy');
          return { stdout: '', stderr: '' };
        }
        const link = {
          ifname: v.name,
          ifindex: 9,
          link_type: 'ether',
          mtu: 1450,
          flags: ['UP'],
          ifalias: `truss:ep:${E}`,
          linkinfo: { info_kind: 'veth' },
          addr_info: [],
        };
        return { stdout: JSON.stringify([link]), stderr: '' };
      },
    };
    return { exec, calls, release: () => release() };
  }

  it('answers before the deletion is done, runs it once however often asked, and settled() waits for it', async () => {
    const { exec, calls, release } = slowExec();
    const r = new VethRemovals();
    await r.start(exec, v.name);
    await r.start(exec, v.name);
    await new Promise((x) => setImmediate(x));
    assert.equal(r.size, 1);
    let settled = false;
    const waiting = r.settled([v.name]).then(() => {
      settled = true;
    });
    await new Promise((x) => setTimeout(x, 10));
    assert.equal(settled, false);
    release();
    await waiting;
    assert.equal(r.size, 0);
    assert.deepEqual(
      calls.filter((c) => c.includes('del')),
      [`ip link del dev ${v.name}`],
    );
  });

  it('a failed deletion is logged, not thrown', async () => {
    const { exec, release } = slowExec(true);
    const warned: string[] = [];
    const r = new VethRemovals({ debug: () => {}, warn: (msg) => warned.push(msg) });
    await r.start(exec, v.name);
    release();
    await r.settled();
    assert.equal(warned.length, 1);
  });

  it('refuses a name that is no interface name', async () => {
    await assert.rejects(new VethRemovals().start(slowExec().exec, 'bad name'));
  });
});
