/**
 * The docker-compose example end to end: examples/compose/compose.yaml (the file docs/compose.md
 * shows) brought up with Docker Compose v2 against a simulated host's dockerd 20.10 (API 1.41)
 * with truss, then the traffic it declares is checked for real: the network's port policy
 * (`truss.ingress: tcp/80,icmp`) admits web:80 and drops web:8080; the client's per-service
 * `driver_opts` policy (tcp/8080) replaces it for that container alone; IPv6 from the fd00::
 * subnet works; `docker compose down` leaves nothing of truss behind.
 *
 * Compose is Debian unstable's docker-compose, unpacked by scripts/lib/compose.sh (run by
 * scripts/setup.sh) into a private dir and run as a standalone binary; TRUSS_E2E_COMPOSE names
 * another binary. The example's image is a variable (TRUSS_EXAMPLE_IMAGE, default busybox): here
 * the harness's imported test image, as there is no registry.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from './harness/exec.ts';
import { type Host, startHost } from './harness/host.ts';
import { IMAGE } from './harness/image.ts';
import { assertNoTrussLeftovers } from './harness/leftovers.ts';
import { CHILD_PATH, REPO_ROOT } from './harness/paths.ts';
import { waitFor } from './harness/wait.ts';

const COMPOSE =
  process.env.TRUSS_E2E_COMPOSE ?? '/var/cache/truss-test/compose/usr/libexec/docker/cli-plugins/docker-compose';
const COMPOSE_FILE = join(REPO_ROOT, 'examples', 'compose', 'compose.yaml');
/** `name:` in the compose file: Compose prefixes the network and names the containers with it. */
const PROJECT = 'truss-example';
const NETWORK = `${PROJECT}_front`;

let host: Host;

/** docker compose -f examples/compose/compose.yaml ARGS against this host's dockerd. */
function compose(args: readonly string[], env: Readonly<Record<string, string>> = {}) {
  return run([COMPOSE, '-f', COMPOSE_FILE, ...args], {
    env: {
      PATH: CHILD_PATH,
      HOME: host.dir,
      DOCKER_HOST: `unix://${host.dir}/docker.sock`,
      DOCKER_CONFIG: join(host.dir, 'cli'),
      TRUSS_EXAMPLE_IMAGE: IMAGE,
      ...env,
    },
    timeoutMs: 180_000,
  });
}

/** The container of a compose service (Compose v2 names them PROJECT-SERVICE-1). */
const ctr = (service: string): string => `${PROJECT}-${service}-1`;

/** An address of a container on the example's network: .IPAddress or .GlobalIPv6Address. */
async function addressOf(service: string, field: 'IPAddress' | 'GlobalIPv6Address'): Promise<string> {
  const fmt = `{{with index .NetworkSettings.Networks "${NETWORK}"}}{{.${field}}}{{end}}`;
  const r = await host.docker(['inspect', '-f', fmt, ctr(service)]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/**
 * An HTTP GET of / on host:port from inside a service's container (busybox nc: the test image's
 * static wget cannot run there); the page's body, or undefined if the connection failed.
 */
async function fetchFrom(service: string, hostPart: string, port: number): Promise<string | undefined> {
  const script = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 "$0" "$1"';
  const r = await host.docker(['exec', ctr(service), 'sh', '-c', script, hostPart, String(port)]);
  if (r.code !== 0 || !r.stdout.startsWith('HTTP/1.')) return undefined;
  return r.stdout.slice(r.stdout.indexOf('\r\n\r\n') + 4).trim();
}

describe('the docker-compose example (examples/compose/compose.yaml) against a real dockerd', {
  timeout: 10 * 60_000,
}, () => {
  before(async () => {
    assert.ok(existsSync(COMPOSE), `${COMPOSE} is missing: run scripts/setup.sh (or scripts/lib/compose.sh)`);
    host = await startHost('cmp');
    await host.startTruss({ debug: true, extraArgs: ['--resync-seconds', '3600'] });
  });

  after(async () => {
    if (host) await compose(['down', '--timeout', '1']).catch(() => {});
    await host?.stop();
  });

  it('1. Compose v2 talks to dockerd 20.10 (API 1.41) and brings the example up on truss', async () => {
    const v = await compose(['version', '--short']);
    assert.equal(v.code, 0, v.stderr);
    const api = await host.docker(['version', '--format', '{{.Server.APIVersion}}']);
    const up = await compose(['up', '-d', '--wait']);
    assert.equal(up.code, 0, `docker compose up (Compose ${v.stdout.trim()}, API ${api.stdout.trim()}): ${up.stderr}`);
    const net = await host.docker([
      'network',
      'inspect',
      '-f',
      '{{.Driver}} {{.IPAM.Driver}} {{.EnableIPv6}}',
      NETWORK,
    ]);
    assert.equal(net.stdout.trim(), 'truss truss true', `the network is truss's, with IPv6: ${net.stderr}`);
    assert.match(await addressOf('web', 'IPAddress'), /^198\.18\.40\./);
    assert.match(await addressOf('web', 'GlobalIPv6Address'), /^fd00:40::/);
    // both servers listen in each container (a refused connection below is the policy, not a dead server)
    for (const s of ['web', 'client']) {
      await waitFor(async () => (await fetchFrom(s, '127.0.0.1', 80)) !== undefined, 20_000, { what: `${s}:80` });
      assert.equal(await fetchFrom(s, '127.0.0.1', 8080), `hello from ${s}`, `${s} serves 8080 locally`);
    }
  });

  it("2. the network's port policy (tcp/80,icmp): client reaches web:80 by name, not web:8080", async () => {
    assert.equal(await fetchFrom('client', 'web', 80), 'hello from web', 'tcp/80 is admitted (and Docker DNS works)');
    assert.equal(await fetchFrom('client', 'web', 8080), undefined, 'tcp/8080 is not in the policy');
    const ping = await host.docker(['exec', ctr('client'), 'ping', '-c', '1', '-W', '2', 'web']);
    assert.equal(ping.code, 0, `icmp is admitted: ${ping.stdout}${ping.stderr}`);
  });

  it("3. the client's per-service driver_opts policy (tcp/8080) replaces the network's for it alone", async () => {
    assert.equal(await fetchFrom('web', 'client', 8080), 'hello from client', "tcp/8080 is in the client's policy");
    assert.equal(await fetchFrom('web', 'client', 80), undefined, "tcp/80 is not (the network's list does not apply)");
    const show = await host.truss.cli(['policy', 'show', NETWORK, '--state-dir', host.stateDir, '--json']);
    assert.equal(show.code, 0, show.stderr);
    const view = JSON.parse(show.stdout) as { ingress: string; endpoints: { ingress: string; override: boolean }[] };
    assert.equal(view.ingress, 'tcp/80,icmp');
    assert.deepEqual(view.endpoints.map((e) => (e.override ? e.ingress : '(network)')).sort(), [
      '(network)',
      'tcp/8080',
    ]);
  });

  it('4. IPv6 from the fd00:40::/64 subnet: client reaches web over IPv6, under the same policy', async () => {
    const web6 = await addressOf('web', 'GlobalIPv6Address');
    assert.equal(await fetchFrom('client', web6, 80), 'hello from web', 'tcp/80 over IPv6');
    assert.equal(await fetchFrom('client', web6, 8080), undefined, 'tcp/8080 over IPv6 is dropped too');
  });

  it('5. docker compose down removes the containers and the network; nothing of truss is left', async () => {
    const down = await compose(['down', '--timeout', '1']);
    assert.equal(down.code, 0, down.stderr);
    assert.notEqual((await host.docker(['network', 'inspect', NETWORK])).code, 0, 'the network is gone');
    const st = await host.trussStatus();
    assert.deepEqual([st.networks.length, st.endpoints.length, st.addresses.length], [0, 0, 0]);
    assert.equal(st.kernel.inSync, true, JSON.stringify(st.kernel.problems));
    await assertNoTrussLeftovers(host);
  });
});
