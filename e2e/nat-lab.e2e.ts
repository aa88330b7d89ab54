/**
 * The NAT lab itself (harness/nat.ts, harness/udp.ts), with plain namespaces and no dockerd:
 * three home routers on one underlay — `eim` and `eim2` endpoint-independent, `pd`
 * port-dependent — and namespaces behind them, plus a "public" namespace on the underlay. Two
 * reflectors (one in the underlay's own namespace, one in the public one) tell a sender the
 * outside ip:port they saw. Proven with real UDP: the mappings differ as the two kinds must,
 * nothing unsolicited gets in, a changed outside address shows on the next packet,
 * simultaneous open works between two endpoint-independent NATs and not with a port-dependent
 * one, and stop() leaves nothing. The mappings measured are printed as figures.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { run } from './harness/exec.ts';
import { printFigures } from './harness/figures.ts';
import { attachBehind, type Nat, startNat } from './harness/nat.ts';
import { createNetns, deleteNetns, listNetns, netnsPath } from './harness/netns.ts';
import { NETNS_PREFIX, WORK_DIR } from './harness/paths.ts';
import { listProcs } from './harness/procs.ts';
import { type Endpoint, observeMapping, openUdp, punch, reflexive, type UdpPeer } from './harness/udp.ts';
import { startUnderlay, UNDERLAY_ADDRESS, type Underlay } from './harness/underlay.ts';
import { sleep } from './harness/wait.ts';

const ns = (short: string): string => `${NETNS_PREFIX}nl-${short}`;
/** behind eim (.2 and .3), behind eim2, behind pd; and one on the underlay itself */
const A = ns('a');
const A2 = ns('a2');
const B = ns('b');
const C = ns('c');
const PUB = ns('pub');
const PUB_INDEX = 9;
const R1: Endpoint = `${UNDERLAY_ADDRESS}:3478`;
const R2: Endpoint = `198.18.255.${PUB_INDEX}:3478`;

let ul: Underlay;
let eim: Nat;
let eim2: Nat;
let pd: Nat;
const peers: UdpPeer[] = [];
const figures: string[] = [];

async function udp(nsName: string, bind: Endpoint, reflect = false): Promise<UdpPeer> {
  const p = await openUdp(netnsPath(nsName), bind, { reflect });
  peers.push(p);
  return p;
}

/** curl's exit code from the namespace (0 ok, 7 refused, 28 timed out) */
async function curl(where: string, url: string): Promise<number> {
  return (await run(['nsenter', `--net=${where}`, '--', 'curl', '-s', '-o', '/dev/null', '--max-time', '1', url])).code;
}

describe('NAT lab: home routers on the underlay', { timeout: 120_000 }, () => {
  before(async () => {
    ul = await startUnderlay();
    [eim, eim2, pd] = await Promise.all([
      startNat(ul, { name: 'eim', mapping: 'endpoint-independent', wanIndex: 201, lan: 241 }),
      startNat(ul, { name: 'eim2', mapping: 'endpoint-independent', wanIndex: 202, lan: 242 }),
      startNat(ul, { name: 'pd', mapping: 'port-dependent', wanIndex: 203, lan: 243 }),
    ]);
    for (const n of [A, A2, B, C, PUB]) await createNetns(n);
    await attachBehind(eim, A, 2);
    await attachBehind(eim, A2, 3);
    await attachBehind(eim2, B, 2);
    await attachBehind(pd, C, 2);
    await ul.attach(PUB, PUB_INDEX, 'nl-pub');
    await udp(ul.name, R1.replace(UNDERLAY_ADDRESS, '0.0.0.0'), true);
    await udp(PUB, '0.0.0.0:3478', true);
  });

  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    for (const n of [eim, eim2, pd]) await n?.stop();
    for (const n of [A, A2, B, C, PUB]) await deleteNetns(n);
    await ul?.stop();
    printFigures(figures);
  });

  it('a host behind the NAT reaches etcd on the underlay, from the NAT’s outside address', async () => {
    assert.equal(await curl(netnsPath(A), `${ul.etcd.url}/health`), 0, 'etcd health through the NAT');
    const flows = await eim.conntrack();
    const etcdFlow = flows.find((l) => l.includes('src=198.18.241.2') && l.includes('dport=2379'));
    assert.ok(
      etcdFlow?.includes(`dst=${eim.wanAddress()}`),
      `masqueraded to ${eim.wanAddress()}:\n${flows.join('\n')}`,
    );
  });

  it('endpoint-independent: one inside port, one outside ip:port for every destination; port-dependent: one per destination', async () => {
    const e = await observeMapping(netnsPath(A), '0.0.0.0:40000', [R1, R2]);
    const p = await observeMapping(netnsPath(C), '0.0.0.0:40000', [R1, R2]);
    figures.push(`endpoint-independent NAT: 198.18.241.2:40000 -> ${R1} seen as ${e[0]}, -> ${R2} seen as ${e[1]}`);
    figures.push(`port-dependent NAT:       198.18.243.2:40000 -> ${R1} seen as ${p[0]}, -> ${R2} seen as ${p[1]}`);
    assert.deepEqual(e, [`${eim.wanAddress()}:40000`, `${eim.wanAddress()}:40000`], 'the port is kept, for both');
    assert.ok(
      p.every((x) => x.startsWith(`${pd.wanAddress()}:`)),
      `both from ${pd.wanAddress()}: ${p}`,
    );
    assert.notEqual(p[0], p[1], 'a new outside port per destination');
  });

  // why two cases: Linux NAT first reuses the mapping an inside ip:port already has (the
  // conntrack bysource table), and only when that outside tuple is taken picks another port
  it('two hosts behind one NAT on the same port: each keeps one mapping, unless the other took its port toward a destination first', async () => {
    const wan = eim.wanAddress();
    const a = await udp(A, '0.0.0.0:40001');
    const a2 = await udp(A2, '0.0.0.0:40001');
    const [aR1] = await reflexive(a, [R1]);
    const [a2R1, a2R2] = await reflexive(a2, [R1, R2]);
    const [aR2] = await reflexive(a, [R2]);
    figures.push(
      `same port 40001 on A and A2 behind one EIM NAT: A -> R1 ${aR1}, A2 -> R1 ${a2R1}, A2 -> R2 ${a2R2}, A -> R2 ${aR2}`,
    );
    assert.equal(aR1, `${wan}:40001`, 'the first flow keeps its port');
    assert.notEqual(a2R1, `${wan}:40001`, 'toward the same destination that outside ip:port is taken');
    assert.equal(a2R2, a2R1, 'A2 keeps the mapping it got, toward another destination too');
    assert.equal(aR2, aR1, 'and so does A');

    const b = await udp(A, '0.0.0.0:40004');
    const b2 = await udp(A2, '0.0.0.0:40004');
    const [bR1] = await reflexive(b, [R1]);
    const [b2R2] = await reflexive(b2, [R2]);
    const [bR2] = await reflexive(b, [R2]);
    figures.push(`same port 40004, A -> R1 ${bR1}, A2 -> R2 ${b2R2} (no clash: port kept), then A -> R2 ${bR2}`);
    assert.equal(bR1, `${wan}:40004`);
    assert.equal(b2R2, `${wan}:40004`, 'no mapping yet and the tuple toward R2 is free: the port is kept');
    assert.notEqual(bR2, bR1, 'A toward R2 cannot have its mapping: not endpoint-independent any more');
  });

  it('nothing unsolicited reaches the inside: not to a live mapping, not routed to the inside address', async () => {
    const a = await udp(A, '0.0.0.0:40002');
    const [out] = await reflexive(a, [R2]); // a live mapping toward R2, answered
    const stranger = await udp(PUB, '0.0.0.0:5555');
    const third = await udp(ul.name, '0.0.0.0:5556');
    stranger.send(out as string, 'stray from the same host, another port');
    third.send(out as string, 'stray from another host');
    // an underlay neighbour that routes the NAT's LAN through its WAN address
    const route = ['ip', 'route', 'replace', eim.lanSubnet, 'via', eim.wanAddress()];
    assert.equal((await ul.exec(route)).code, 0);
    third.send('198.18.241.2:40002', 'routed straight to the inside');
    const tcp = await curl(ul.netnsPath, 'http://198.18.241.2:9/');
    const fromLan = await curl(eim.netnsPath, 'http://198.18.241.2:9/');
    await ul.exec(['ip', 'route', 'del', eim.lanSubnet]);
    await sleep(500);
    const strays = a.received().filter((d) => !d.data.startsWith('seen '));
    figures.push(
      `unsolicited to ${out} and routed to 198.18.241.2: ${strays.length} datagrams in; TCP connect: curl exit ${tcp}`,
    );
    assert.deepEqual(strays, [], 'no stray datagram got in');
    assert.equal(fromLan, 7, 'from the LAN side the address answers (refused: no listener)');
    assert.equal(tcp, 28, 'from the underlay a TCP connect times out: dropped, not even refused');
  });

  it('simultaneous open: works between two endpoint-independent NATs, fails with a port-dependent one', async () => {
    const a = await udp(A, '0.0.0.0:51820');
    const b = await udp(B, '0.0.0.0:51820');
    const [aOut] = await reflexive(a, [R1]);
    const [bOut] = await reflexive(b, [R1]);
    const ok = await punch(a, aOut as string, b, bOut as string);
    figures.push(`hole punch EIM ${aOut} <-> EIM ${bOut}: ${ok.ms !== undefined ? `${ok.ms} ms` : 'failed'}`);
    assert.ok(ok.aReceived && ok.bReceived, `both ways: ${JSON.stringify(ok)}`);

    // A's first packets reach B's router before B has sent anything: they must die there
    // without taking the outside port B is about to be mapped to (nat.ts: WAN input drop)
    const a1 = await udp(A, '0.0.0.0:51822');
    const b1 = await udp(B, '0.0.0.0:51822');
    const [a1Out] = await reflexive(a1, [R1]);
    const b1Out = `${eim2.wanAddress()}:51822`; // what B will be: the port is kept (tested above)
    const late = await punch(a1, a1Out as string, b1, b1Out, { aHeadStartMs: 500 });
    figures.push(`hole punch, A 500 ms ahead: ${late.ms !== undefined ? `${late.ms} ms` : 'failed'}`);
    assert.ok(late.aReceived && late.bReceived, `both ways after a head start: ${JSON.stringify(late)}`);
    assert.deepEqual(await reflexive(b1, [R1]), [b1Out], "B's mapping was not displaced");

    const a3 = await udp(A, '0.0.0.0:51821');
    const c = await udp(C, '0.0.0.0:51821');
    const [a3Out] = await reflexive(a3, [R1]);
    const [cOut] = await reflexive(c, [R1]);
    const bad = await punch(a3, a3Out as string, c, cOut as string, { timeoutMs: 2000 });
    figures.push(
      `hole punch EIM ${a3Out} <-> port-dependent ${cOut}: A received ${bad.aReceived}, C received ${bad.bReceived} in 2 s`,
    );
    assert.ok(!bad.aReceived && !bad.bReceived, `neither way: ${JSON.stringify(bad)}`);
  });

  it('after changeExternalAddress the same flow comes from the new outside address', async () => {
    const a = await udp(A, '0.0.0.0:40003');
    const [before1] = await reflexive(a, [R1]);
    const t0 = performance.now();
    await eim.changeExternalAddress(211);
    const [after1] = await reflexive(a, [R1]);
    const ms = Math.round(performance.now() - t0);
    figures.push(`changeExternalAddress: ${before1} -> ${after1} (address changed and seen in ${ms} ms)`);
    assert.equal(eim.wanAddress(), '198.18.255.211');
    assert.equal(after1, '198.18.255.211:40003');
    assert.equal(await curl(netnsPath(A), `${ul.etcd.url}/health`), 0, 'etcd still reachable');
  });

  it('stop() removes the routers, their links and processes; a second stop() is a no-op', async () => {
    const capture = await pd.pcap('wan', 'udp');
    for (const n of [eim, eim2, pd]) await n.stop();
    await capture.stop();
    for (const n of [eim, eim2, pd]) await n.stop();
    assert.deepEqual(
      listNetns().filter((n) => n.startsWith(`${NETNS_PREFIX}nat-`)),
      [],
      'no router namespace',
    );
    const ulLinks = (await ul.exec(['ip', '-o', 'link', 'show'])).stdout;
    assert.doesNotMatch(ulLinks, /ul-nat-/, 'no router port on the underlay bridge');
    const aLinks = (await run(['ip', '-n', A, '-o', 'link', 'show'])).stdout;
    assert.doesNotMatch(aLinks, /eth-lan/, 'no LAN link left in a host behind it');
    const left = listProcs().filter((p) => p.cmdline.includes(`${WORK_DIR}/nat/`));
    assert.deepEqual(left, [], 'no capture left');
  });
});
