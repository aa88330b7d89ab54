/**
 * Routed mode (-o truss.mode=routed, core/routed.ts) against a real dockerd: same-network TCP and ping (v4, v6,
 * the gateway), Docker's Join static routes in the container, isolation between networks, and
 * anti-spoofing (a container sending from an address not its own reaches nobody). truss is
 * started the way users do (scripts/run.sh, no flags); the routed network uses pure defaults
 * (only -o truss.mode=routed).
 *
 * Routed mode's smoke: CI's e2e28 step runs the parameterised suites in bridge mode only
 * (TRUSS_E2E_MODES=bridge), and this file on dockerd 28.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { containerPid, createTrussNetwork, runContainer } from './harness/containers.ts';
import { type Host, startHost } from './harness/host.ts';
import { ping, SINK_CMD, serverSaw, tcpConnect } from './harness/traffic.ts';
import { ensureDefaultStateDirMountPoint, removeDefaultStateDirMountPoint } from './harness/truss.ts';

/** routed only: the bridge mode of the same checks is in the parameterised suites (network, policy, ports...) */
const MODES = ['routed'] as const;

for (const [i, mode] of MODES.entries()) {
  const opts = mode === 'routed' ? ['-o', 'truss.mode=routed'] : [];
  const n = 70 + i * 2;
  const v4 = (k: number, h: number) => `198.18.${n + k}.${h}`;
  const v6 = (k: number, h: number | '') => `fd00:${n + k}::${h}`;

  describe(`${mode} mode against a real dockerd`, { timeout: 6 * 60_000 }, () => {
    let host: Host;
    let made = false;
    before(async () => {
      made = ensureDefaultStateDirMountPoint();
      host = await startHost(`rt${mode[0]}`);
      await host.startTruss({ runScript: true });
      for (const k of [0, 1]) {
        const r = await createTrussNetwork(host, [
          ...opts,
          '--ipv6',
          '--subnet',
          `${v4(k, 0)}/24`,
          '--subnet',
          `${v6(k, '')}/64`,
          `m${k}`,
        ]);
        assert.equal(r.code, 0, `network create: ${r.stderr}`);
      }
      await Promise.all([
        runContainer(host, { name: 'a1', network: 'm0', cmd: SINK_CMD() }),
        runContainer(host, { name: 'a2', network: 'm0', cmd: SINK_CMD() }),
        runContainer(host, { name: 'b1', network: 'm1', cmd: SINK_CMD() }),
      ]);
    });
    after(async () => {
      await host?.stop();
      removeDefaultStateDirMountPoint(made);
    });

    const ipOf = async (ctr: string, fam: 4 | 6) => {
      const f = fam === 4 ? '{{.IPAddress}}' : '{{.GlobalIPv6Address}}';
      const net = ctr === 'b1' ? 'm1' : 'm0';
      const r = await host.docker([
        'inspect',
        '-f',
        `{{with index .NetworkSettings.Networks "${net}"}}${f}{{end}}`,
        ctr,
      ]);
      return r.stdout.trim();
    };

    it('same network: TCP and ping, v4 and v6, and the gateway', async () => {
      const [a2, a2v6] = [await ipOf('a2', 4), await ipOf('a2', 6)];
      const r = await tcpConnect(host, 'a1', a2);
      assert.ok(r.ok && (await serverSaw(host, 'a2', r.token)), `a1 -> a2: ${r.output}`);
      const r6 = await tcpConnect(host, 'a1', a2v6);
      assert.ok(r6.ok, `a1 -> a2 v6: ${r6.output}`);
      assert.equal(await ping(host, 'a1', v4(0, 1)), true, 'gateway v4');
      assert.equal(await ping(host, 'a1', v6(0, 1)), true, 'gateway v6');
    });

    it(`Docker installed the Join's routes (${mode})`, async () => {
      const r4 = await host.docker(['exec', 'a1', 'ip', 'route']);
      const r6 = await host.docker(['exec', 'a1', 'ip', '-6', 'route']);
      assert.match(r4.stdout, new RegExp(`default via ${v4(0, 1).replaceAll('.', '\\.')}`));
      if (mode === 'routed') {
        assert.match(r4.stdout, new RegExp(`${v4(0, 128).replaceAll('.', '\\.')}/25 via`));
        assert.match(r6.stdout, new RegExp(`fd00:${n}:0:0:8000::/65 via`));
        const links = await host.exec(['ip', '-d', 'link', 'show', 'type', 'bridge']);
        assert.doesNotMatch(links.stdout, /trb/, 'a routed network has no bridge');
      }
    });

    it('across networks: blocked both ways', async () => {
      const [a1, b1] = [await ipOf('a1', 4), await ipOf('b1', 4)];
      const t1 = await tcpConnect(host, 'a1', b1, undefined, 2);
      const t2 = await tcpConnect(host, 'b1', a1, undefined, 2);
      assert.equal(t1.ok || (await serverSaw(host, 'b1', t1.token)), false);
      assert.equal(t2.ok || (await serverSaw(host, 'a1', t2.token)), false);
    });

    it('anti-spoofing: from an address not its own (v4 and v6) it reaches nobody', async () => {
      const pid = await containerPid(host, 'a1');
      const inCtr = (argv: readonly string[]) => host.exec(['nsenter', '-t', String(pid), '-n', ...argv]);
      await inCtr(['ip', 'addr', 'add', `${v4(0, 77)}/32`, 'dev', 'eth0']);
      await inCtr(['ip', 'addr', 'add', `${v6(0, 77)}/128`, 'dev', 'eth0', 'nodad']);
      const a2 = await ipOf('a2', 4);
      const a2v6 = await ipOf('a2', 6);
      const spoof = (src: string, dst: string) =>
        host.docker(['exec', 'a1', 'ping', '-c', '2', '-i', '0.2', '-W', '1', '-I', src, dst], 20_000);
      assert.notEqual((await spoof(v4(0, 77), a2)).code, 0, 'v4 spoofed source');
      assert.notEqual((await spoof(v6(0, 77), a2v6)).code, 0, 'v6 spoofed source');
      assert.equal(await ping(host, 'a1', a2), true, 'its own address still works');
    });
  });
}
