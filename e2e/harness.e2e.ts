/**
 * Sanity of the e2e harness itself, with Docker's own bridge network only (no truss):
 * a simulated host starts, its dockerd answers, the imported image runs, two containers on a
 * bridge network reach each other over TCP and ICMP, and stop() leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { cidrsOverlap, inCidr } from './harness/cidr.ts';
import { containerIp, runContainer } from './harness/containers.ts';
import { createPlusJoinMs, dockerdFigureLine, parseRpcSamples, percentile } from './harness/figures.ts';
import type { Host } from './harness/host.ts';
import { startHost } from './harness/host.ts';
import { trussKernelObjects } from './harness/leftovers.ts';
import { listNetns } from './harness/netns.ts';
import { listProcs } from './harness/procs.ts';
import { parsePing, ping, pingProbe, SINK_CMD, serverSaw, tcpConnect } from './harness/traffic.ts';
import { sleep } from './harness/wait.ts';

describe('e2e harness helpers (pure)', () => {
  it('measures the longest ping gap, from losses and from late (queued) replies', () => {
    const r = (seq: number, ms: number) => `64 bytes from 198.18.0.2: seq=${seq} ttl=64 time=${ms} ms`;
    const lost = [r(0, 0.1), r(1, 0.1), r(5, 0.1), '7 packets transmitted, 3 packets received'].join('\n');
    const p = parsePing(lost, 100);
    assert.equal(p.received, 3);
    assert.equal(p.maxGapMs, 400, 'seq 2..4 lost: 400 ms from seq 1 to seq 5');
    const held = [r(0, 0.1), r(1, 1000), r(2, 900), r(3, 800), '4 packets transmitted, 4 packets received'].join('\n');
    assert.equal(parsePing(held, 100).maxGapMs, 1100, 'seq 1..3 held until t=1100: a gap although none was lost');
    assert.equal(parsePing('2 packets transmitted, 0 packets received', 100).maxGapMs, Number.POSITIVE_INFINITY);
  });

  it('pairs CreateEndpoint and Join by endpoint id from the debug log', () => {
    const line = (rpc: string, eid: string, durationMs: number) => JSON.stringify({ rpc, eid, durationMs });
    const log = [
      line('NetworkDriver.CreateEndpoint', 'aaa', 10),
      line('NetworkDriver.CreateEndpoint', 'bbb', 20),
      line('NetworkDriver.Join', 'bbb', 2),
      line('NetworkDriver.Join', 'aaa', 1),
      'not json',
    ].join('\n');
    assert.deepEqual(createPlusJoinMs(parseRpcSamples(log)), [11, 22]);
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
    assert.equal(percentile([1, 2, 3, 4], 99), 4);
  });

  it('names the dockerd a suite ran against', () => {
    const server = JSON.stringify({
      Version: '28.5.2+dfsg4',
      ApiVersion: '1.51',
      Components: [
        { Name: 'Engine', Version: '28.5.2+dfsg4' },
        { Name: 'containerd', Version: '1.6.20~ds1' },
        { Name: 'runc', Version: '1.1.5+ds1' },
      ],
    });
    assert.equal(
      dockerdFigureLine(server, '/d/usr/sbin/dockerd'),
      'dockerd 28.5.2+dfsg4 (API 1.51; containerd 1.6.20~ds1, runc 1.1.5+ds1) from /d/usr/sbin/dockerd',
    );
    assert.equal(dockerdFigureLine('', 'dockerd'), 'dockerd ? (API ?) from dockerd');
  });

  it('does IPv4 subnet arithmetic', () => {
    assert.ok(inCidr('198.18.10.7', '198.18.10.0/24'));
    assert.ok(!inCidr('198.18.11.7', '198.18.10.0/24'));
    assert.ok(cidrsOverlap('198.18.128.0/24', '198.18.128.0/17'));
    assert.ok(!cidrsOverlap('198.18.128.0/24', '198.18.129.0/24'));
  });
});

describe('e2e harness (Docker bridge only)', { timeout: 300_000 }, () => {
  let host: Host | undefined;

  before(async () => {
    host = await startHost('sanity');
  });

  after(async () => {
    await host?.stop();
  });

  it('runs a dockerd that answers inside its own namespace', async () => {
    const h = host!;
    const v = await h.docker(['version', '--format', '{{.Server.Version}}']);
    assert.equal(v.code, 0, v.stderr);
    const links = await h.exec(['ip', '-o', 'link', 'show', 'docker0']);
    assert.equal(links.code, 0, 'docker0 must exist in the host netns');
    const addr = await h.exec(['ip', '-o', '-4', 'addr', 'show', 'docker0']);
    assert.match(addr.stdout, /198\.19\.254\.1\/24/, 'docker0 must use the test range');
  });

  it('runs the imported busybox image', async () => {
    const r = await host!.docker(['run', '--rm', 'truss-e2e-busybox:1', 'sh', '-c', 'echo hello-from-busybox']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'hello-from-busybox');
  });

  it('connects two containers on a Docker bridge network with TCP and ping', async () => {
    const h = host!;
    const net = await h.docker(['network', 'create', 'b1']);
    assert.equal(net.code, 0, net.stderr);
    await runContainer(h, { name: 'srv', network: 'b1', cmd: SINK_CMD() });
    await runContainer(h, { name: 'cli', network: 'b1' });
    const ip = await containerIp(h, 'srv', 'b1');
    assert.match(ip, /^198\.19\./);
    const ok = await tcpConnect(h, 'cli', ip);
    assert.ok(ok.ok, `TCP to ${ip}:7000 failed: ${ok.output}`);
    assert.ok(await serverSaw(h, 'srv', ok.token), 'the sink must record the token');
    assert.ok(await ping(h, 'cli', ip), `ping ${ip}`);
    const refused = await tcpConnect(h, 'cli', ip, 7001, 2);
    assert.equal(refused.ok, false, 'a closed port must not connect');
  });

  it('sees a 1.5 s link outage as a gap in the ping probe', async () => {
    const h = host!;
    const ip = await containerIp(h, 'srv', 'b1');
    const probe = pingProbe(h, 'cli', ip, 5);
    await sleep(1500);
    const links = (await h.exec(['ip', '-o', 'link', 'show', 'type', 'veth'])).stdout;
    const veths = [...links.matchAll(/^\d+: (veth[^@:]+)/gm)].map((m) => m[1] as string);
    assert.ok(veths.length >= 2, `host-side veths expected: ${links}`);
    for (const v of veths) await h.exec(['ip', 'link', 'set', v, 'down']);
    await sleep(1500);
    for (const v of veths) await h.exec(['ip', 'link', 'set', v, 'up']);
    const p = await probe;
    assert.ok(p.received > 0, p.output);
    assert.ok(p.maxGapMs >= 1200, `the outage must show as a gap, got ${p.maxGapMs} ms`);
  });

  it('tears the host down completely', async () => {
    const h = host!;
    host = undefined;
    await h.stop();
    assert.ok(!listNetns().includes(h.name), `${h.name} must be deleted`);
    assert.ok(!existsSync(h.dir), `${h.dir} must be removed`);
    const strays = listProcs().filter((p) => p.cmdline.includes(h.dir));
    assert.deepEqual(strays, [], 'no process of the host may survive');
    assert.deepEqual(await trussKernelObjects(), [], 'root netns must hold no truss objects');
  });
});
