import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ShaperObject, tbfFor } from '../../core/bandwidth.ts';
import { ifbOfHostVeth } from '../../core/naming.ts';
import type { LinkState } from './links.ts';
import {
  compareShapers,
  parseQdiscs,
  parseRedirects,
  planShaper,
  type QdiscJson,
  type ShaperState,
  splitBatchJson,
  tbfArgs,
  tbfMatches,
} from './shaper.ts';

const EID = `bbbbbbbbbbbb${'1'.repeat(52)}`;
const VETH = 'trvbbbbbbbbbbbb';
const IFB = 'trfbbbbbbbbbbbb';
const MARK = `truss:ifb:${EID}`;
const EG = tbfFor(50_000_000, 1500);
const IN = tbfFor(30_000_000, 1500);
const both: ShaperObject = {
  name: VETH,
  ifb: IFB,
  endpointId: EID,
  networkId: 'a'.repeat(64),
  egress: EG,
  ingress: IN,
};

/** tc's own rendering of a tbf it was given (rate in bytes/s, burst rounded, queue as latency in µs) */
const tbfQdisc = (dev: string, p: typeof EG, burstOff = -4): QdiscJson => ({
  kind: 'tbf',
  handle: '7472:',
  dev,
  root: true,
  options: { rate: p.rate / 8, burst: p.burst + burstOff, lat: Math.round(((p.limit - p.burst) / (p.rate / 8)) * 1e6) },
});
const ifbLink = (over: Partial<LinkState> = {}): LinkState => ({
  name: IFB,
  ifindex: 9,
  kind: 'ifb',
  alias: MARK,
  mtu: 1500,
  up: true,
  mac: '02:00:00:00:00:09',
  addresses: [],
  ...over,
});
const converged: ShaperState = {
  vethRoot: tbfQdisc(VETH, IN),
  vethIngress: true,
  redirects: [IFB],
  ifb: ifbLink(),
  ifbRoot: tbfQdisc(IFB, EG),
};
const empty: ShaperState = {
  vethRoot: { kind: 'noqueue', handle: '0:', root: true },
  vethIngress: false,
  redirects: [],
};

describe('tbfArgs / tbfMatches', () => {
  it('renders exact integers', () => {
    assert.equal(tbfArgs(EG), 'tbf rate 50000000bit burst 62500 limit 218750');
  });
  it('accepts tc rounding, refuses another rate, handle or kind', () => {
    assert.ok(tbfMatches(tbfQdisc(VETH, EG), EG));
    assert.ok(tbfMatches({ ...tbfQdisc(VETH, EG), options: { ...tbfQdisc(VETH, EG).options, burst: '62500b/1' } }, EG));
    assert.ok(!tbfMatches(tbfQdisc(VETH, IN), EG));
    assert.ok(!tbfMatches({ ...tbfQdisc(VETH, EG), handle: '1:' }, EG), 'not our handle');
    assert.ok(!tbfMatches({ kind: 'noqueue', handle: '0:', root: true }, EG));
    assert.ok(!tbfMatches(undefined, EG));
  });
});

describe('planShaper', () => {
  it('from nothing: ifb made and marked first, then its tbf, the root tbf and the redirect', () => {
    const p = planShaper(empty, both);
    assert.deepEqual(p.linksBefore, [`link add ${IFB} type ifb`, `link set ${IFB} alias ${MARK} up`]);
    assert.deepEqual(p.tc, [
      `qdisc replace dev ${VETH} root handle 7472: ${tbfArgs(IN)}`,
      `qdisc replace dev ${IFB} root handle 7472: ${tbfArgs(EG)}`,
      `qdisc add dev ${VETH} handle ffff: ingress`,
      `filter add dev ${VETH} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${IFB}`,
    ]);
    assert.deepEqual(p.linksAfter, []);
  });
  it('converged: nothing to write', () => {
    const p = planShaper(converged, both);
    assert.deepEqual([p.linksBefore, p.tc, p.linksAfter, p.reasons], [[], [], [], []]);
  });
  it('a lost filter rebuilds the ingress qdisc (u32 has no stable replace)', () => {
    const p = planShaper({ ...converged, redirects: [] }, both);
    assert.deepEqual(p.tc, [
      `qdisc del dev ${VETH} ingress`,
      `qdisc add dev ${VETH} handle ffff: ingress`,
      `filter add dev ${VETH} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${IFB}`,
    ]);
    assert.equal(planShaper({ ...converged, redirects: [IFB, 'eth0'] }, both).tc.length, 3, 'an extra filter too');
  });
  it('only an ingress limit: no ifb, no ingress qdisc; leftovers of an egress limit go', () => {
    const only: ShaperObject = { name: VETH, ifb: IFB, endpointId: EID, networkId: 'a'.repeat(64), ingress: IN };
    const p = planShaper(converged, only);
    assert.deepEqual(p.tc, [`qdisc del dev ${VETH} ingress`]);
    assert.deepEqual(p.linksAfter, [`link del dev ${IFB}`]);
  });
  it('only an egress limit: our root tbf goes, a foreign root qdisc stays', () => {
    const only: ShaperObject = { name: VETH, ifb: IFB, endpointId: EID, networkId: 'a'.repeat(64), egress: EG };
    assert.deepEqual(planShaper(converged, only).tc, [`qdisc del dev ${VETH} root`]);
    const foreignRoot = { ...converged, vethRoot: { kind: 'fq_codel', handle: '8001:', root: true } };
    assert.deepEqual(planShaper(foreignRoot, only).tc, []);
  });
  it('adopts an unmarked ifb under our name, refuses anyone else', () => {
    const unmarked = (over: Partial<LinkState> = {}): LinkState => {
      const { alias: _a, ...rest } = ifbLink(over);
      return rest;
    };
    assert.deepEqual(planShaper({ ...converged, ifb: unmarked() }, both).linksBefore, [
      `link set ${IFB} alias ${MARK} up`,
    ]);
    for (const foreign of [
      ifbLink({ alias: 'someone' }),
      unmarked({ kind: 'dummy' }),
      unmarked({ name: 'ifb0' }),
      ifbLink({ alias: `truss:ifb:${'c'.repeat(64)}` }),
    ]) {
      assert.throws(() => planShaper({ ...converged, ifb: foreign }, both), /already exists/);
    }
  });
  it('refuses names that are not interface names', () => {
    assert.throws(() => planShaper(empty, { ...both, ifb: 'trf x; reboot' }), /invalid interface name/);
  });
});

describe('parsing tc output', () => {
  it('qdiscs and the redirect targets of u32 filters (hash-table entries skipped)', () => {
    const q = parseQdiscs(
      '[{"kind":"tbf","handle":"7472:","dev":"trvbbbbbbbbbbbb","root":true,"refcnt":3,"options":{"rate":3750000,"burst":37496,"lat":25001}},{"kind":"ingress","handle":"ffff:","dev":"trvbbbbbbbbbbbb","parent":"ffff:fff1","options":{}}]\n',
    );
    assert.equal(q.length, 2);
    const f =
      '[{"parent":"ffff:","protocol":"all","pref":1,"kind":"u32","chain":0},{"parent":"ffff:","protocol":"all","pref":1,"kind":"u32","chain":0,"options":{"fh":"800:","ht_divisor":1}},{"parent":"ffff:","protocol":"all","pref":1,"kind":"u32","chain":0,"options":{"fh":"800::800","order":2048,"key_ht":"800","bkt":"0","not_in_hw":true,"match":{"value":"0","mask":"0","offmask":"","off":0},"actions":[{"order":1,"kind":"mirred","mirred_action":"redirect","direction":"egress","to_dev":"trfbbbbbbbbbbbb","control_action":{"type":"stolen"},"index":1,"ref":1,"bind":1}]}}]';
    assert.deepEqual(parseRedirects(f), [IFB]);
    assert.deepEqual(parseRedirects('[]'), []);
    assert.deepEqual(splitBatchJson(`${f}\n[]\n`), [f, '[]']);
  });
});

describe('compareShapers', () => {
  const qdiscs = [tbfQdisc(VETH, IN), { kind: 'ingress', handle: 'ffff:', dev: VETH }, tbfQdisc(IFB, EG)];
  it('converged: nothing drifted, nothing extra', () => {
    const c = compareShapers([both], qdiscs, [ifbLink()], new Map([[VETH, [IFB]]]));
    assert.deepEqual(c, { drifted: [], extra: [], problems: [] });
  });
  it('a qdisc deleted by hand, or an unreadable filter list, is drift', () => {
    const c = compareShapers([both], qdiscs.slice(1), [ifbLink()], new Map([[VETH, [IFB]]]));
    assert.deepEqual(c.drifted, [VETH]);
    assert.match(c.problems[0] as string, /root tbf missing/);
    assert.deepEqual(compareShapers([both], qdiscs, [ifbLink()], new Map()).drifted, [VETH]);
  });
  it('a missing veth is drift; shaping of an endpoint not desired is extra; foreign ifbs are not', () => {
    assert.deepEqual(compareShapers([both], [], [], new Map()).drifted, [VETH]);
    const other = ifbLink({ name: 'trfcccccccccccc', alias: `truss:ifb:${'c'.repeat(64)}` });
    const foreign = ifbLink({ name: 'ifb0', alias: 'mine' });
    const c = compareShapers(
      [],
      [...qdiscs, { kind: 'ingress', handle: 'ffff:', dev: 'eth0' }],
      [ifbLink(), other, foreign],
      new Map(),
    );
    assert.deepEqual(c.extra, [VETH, 'trvcccccccccccc']);
    assert.deepEqual(c.extra.map(ifbOfHostVeth), [IFB, 'trfcccccccccccc'], 'each names its ifb');
  });
});
