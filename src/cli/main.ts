/**
 * The `truss` command: `serve` runs the daemon; every other command talks to a running
 * daemon over its admin socket (never to the kernel directly).
 */
import { parseArgs } from 'node:util';
import { adminSocketPath, DEFAULTS } from '../config.ts';
import { VERSION } from '../obs/version.ts';

/** why loaded on use: the admin contract brings zod (about 50 ms of CPU), which version and help never need */
async function contract() {
  const [api, client, format] = await Promise.all([
    import('../core/admin-api.ts'),
    import('./admin-client.ts'),
    import('./format.ts'),
  ]);
  return { ...api, ...client, ...format };
}

const USAGE = `usage: truss <command> [flags]

commands:
  serve       run the plugin daemon (flags: --socket, --state-dir, --log-level, --default-pools,
              --resync-seconds, --gc-grace-seconds, --store, --node-name, --advertise-address,
              --wg-port, --etcd-ca/--etcd-cert/--etcd-key, --etcd-user/--etcd-password-file,
              --etcd-insecure, --iptables, --proc-sys)
  doctor      check this host for truss serve without a daemon: programs (and their Debian packages),
              nf_tables, the iptables backend, WireGuard, ... (--json; takes serve's flags);
              exit 1 when a must-have is missing
  status      show networks, endpoints, IPAM state, what is in error and whether the kernel matches
              (--json, --verbose: every address; --check: exit 1 when unhealthy, with the reasons)
  reconcile   run a full reconcile pass now and show the result (--json)
  policy      a network's port policy at run time (DOCKER_HOST finds Docker; see truss policy --help):
                policy show  NETWORK [--json]
                policy set   NETWORK --ingress SPEC [--json]   (SPEC: tcp/80,udp/53@198.18.0.0/16,icmp | none)
                policy clear NETWORK [--json]
  keys rotate replace this host's WireGuard key; peers pick up the new public key through etcd
  cleanup --foreign [--json]
              remove the truss bridges and veths of another or an unknown state (see truss status)
  cluster forget NODE [--force] [--json]
              free the address claims, blocks and memberships of a host that is gone for good
  cluster rbac --node ID [--apply ...]
              the etcd role and user that let host ID write its own cluster records only
  version     print the version

Every command takes --state-dir (default ${DEFAULTS.stateDir}, env TRUSS_STATE_DIR) to find the daemon.
`;

async function adminCommand(cmd: 'reconcile', args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'state-dir': { type: 'string' }, json: { type: 'boolean' } },
    strict: true,
  });
  const stateDir = values['state-dir'] ?? (process.env.TRUSS_STATE_DIR || DEFAULTS.stateDir);
  const socket = adminSocketPath(stateDir);
  const { adminRequest, decodeReply, jsonOutput, reconcileBody } = await contract();
  const body = await adminRequest(socket, 'POST', `/v1/${cmd}`);
  decodeReply(reconcileBody, body, cmd);
  process.stdout.write(jsonOutput(body));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve': {
      const { serve } = await import('../main.ts');
      await serve(rest, process.env);
      return -1; // keep running
    }
    case 'doctor': {
      const { doctorCommand } = await import('./doctor.ts');
      return doctorCommand(rest, { env: process.env, stdout: (t) => process.stdout.write(t) });
    }
    case 'status': {
      const { statusCommand } = await import('./status.ts');
      return statusCommand(rest, {
        env: process.env,
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      });
    }
    case 'reconcile':
      return adminCommand(cmd, rest);
    case 'policy': {
      const { policyCommand } = await import('./policy.ts');
      return policyCommand(rest, {
        env: process.env,
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      });
    }
    case 'cluster': {
      const { clusterCommand } = await import('./cluster.ts');
      return clusterCommand(rest, {
        env: process.env,
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      });
    }
    case 'cleanup': {
      const { cleanupCommand } = await import('./cleanup.ts');
      return cleanupCommand(rest, {
        env: process.env,
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      });
    }
    case 'keys': {
      const [sub, ...more] = rest;
      if (sub !== 'rotate') {
        process.stderr.write('usage: truss keys rotate [--state-dir DIR]\n');
        return 2;
      }
      const { values } = parseArgs({ args: more, options: { 'state-dir': { type: 'string' } }, strict: true });
      const stateDir = values['state-dir'] ?? (process.env.TRUSS_STATE_DIR || DEFAULTS.stateDir);
      const { adminRequest, decodeReply, rotateKeyBody } = await contract();
      const reply = await adminRequest(adminSocketPath(stateDir), 'POST', '/v1/keys/rotate');
      const body = decodeReply(rotateKeyBody, reply, 'keys rotate');
      process.stdout.write(
        `new WireGuard public key of ${body.node}: ${body.publicKey} (peers follow within seconds)\n`,
      );
      return 0;
    }
    case 'version':
    case '--version':
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`truss: unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
      return 2;
  }
}

/**
 * Exit once stdout and stderr have handed everything to the kernel: process.exit right after
 * write() cut piped output at the pipe's 64 KiB (security review L2). A write error (the
 * reader went away) still calls back, so this never hangs.
 */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', () => {}); // EPIPE: nothing left to flush to
    if (stream.destroyed || !stream.writable) done();
    else stream.write('', done);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) exitAfterFlush(code);
  },
  (e: unknown) => {
    process.stderr.write(`truss: ${e instanceof Error ? e.message : String(e)}\n`);
    exitAfterFlush(1);
  },
);
