/**
 * Real etcd servers for tests (store, cluster and e2e): `startEtcd()` runs /usr/bin/etcd on
 * 127.0.0.1 with two random free ports and a temp data dir, and waits until it serves clients.
 *
 * Nothing is left behind: etcd runs under `setpriv --pdeathsig KILL` (it dies with the test
 * process, even on SIGKILL), every server still running at process exit is killed and its data
 * dir removed, and `stop()` is idempotent so `after` hooks can always call it.
 *
 * Also here: `makeEtcdTls()` (a CA, a server and a client certificate made with openssl) and
 * `startTcpProxy()` (a proxy in front of etcd that a test can cut or black-hole, to break a
 * client's connections while etcd itself stays up).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ETCD = '/usr/bin/etcd';
const SETPRIV = '/usr/bin/setpriv';
const READY = /serving client traffic/;
const START_TIMEOUT_MS = 15_000;

export interface EtcdServer {
  /** "127.0.0.1:PORT", the form EtcdStore endpoints take */
  readonly endpoint: string;
  readonly dataDir: string;
  /** pid of the running etcd, undefined while it is down */
  readonly pid: number | undefined;
  /** SIGTERM (if running), then start again on the same ports and data dir */
  restart(): Promise<void>;
  /** SIGKILL, keeping the data dir (a crash; `restart()` brings it back) */
  kill(): Promise<void>;
  /** stop for good and remove the data dir; safe to call twice */
  stop(): Promise<void>;
}

export interface EtcdTlsFiles {
  readonly dir: string;
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** a second, unrelated CA (for "wrong CA" tests) */
  readonly otherCa: string;
  cleanup(): Promise<void>;
}

export interface StartEtcdOptions {
  /** serve clients over TLS and require client certificates signed by `ca` */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** pids of every etcd this process started that is still running (leak checks) */
export function runningEtcdPids(): number[] {
  return [...live].map((c) => c.pid).filter((p): p is number => p !== undefined);
}

/** A port that was free a moment ago (the kernel's pick for port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP address for port 0');
  return address.port;
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'truss-etcd-'));
  dirs.add(dataDir);
  for (let attempt = 1; ; attempt++) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const server = new TestEtcd(dataDir, clientPort, peerPort, opts);
    try {
      await server.start();
      return server;
    } catch (e) {
      // why: another process may take a port between freePort() and etcd's bind
      if (attempt < 3 && /address already in use/.test(String(e))) {
        await rm(join(dataDir, 'data'), { recursive: true, force: true });
        continue;
      }
      await server.stop();
      throw e;
    }
  }
}

class TestEtcd implements EtcdServer {
  readonly endpoint: string;
  readonly dataDir: string;
  readonly #args: string[];
  #child: ChildProcess | undefined;
  #stopped = false;

  constructor(dataDir: string, clientPort: number, peerPort: number, opts: StartEtcdOptions) {
    this.dataDir = dataDir;
    this.endpoint = `127.0.0.1:${clientPort}`;
    const scheme = opts.tls ? 'https' : 'http';
    const peer = `http://127.0.0.1:${peerPort}`;
    this.#args = [
      ...['--name', 'truss-test', '--data-dir', join(dataDir, 'data')],
      ...[
        '--listen-client-urls',
        `${scheme}://${this.endpoint}`,
        '--advertise-client-urls',
        `${scheme}://${this.endpoint}`,
      ],
      ...['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `truss-test=${peer}`],
      // why: a short election timeout makes a restart ready in ~0.3 s instead of ~1.6 s (min lease TTL stays 1 s)
      ...['--heartbeat-interval', '25', '--election-timeout', '250'],
      ...['--logger', 'zap', '--log-outputs', 'stderr'],
      ...(opts.tls
        ? [
            ...['--cert-file', opts.tls.cert, '--key-file', opts.tls.key],
            ...['--client-cert-auth', '--trusted-ca-file', opts.tls.ca],
          ]
        : []),
    ];
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): Promise<void> {
    if (this.#stopped) return Promise.reject(new Error('this etcd was stopped for good'));
    const [cmd, args] = existsSync(SETPRIV)
      ? [SETPRIV, ['--pdeathsig', 'KILL', '--', ETCD, ...this.#args]]
      : [ETCD, this.#args];
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    let log = '';
    let ready = false;
    return new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        if (ready) return;
        ready = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`etcd on ${this.endpoint} did not start: ${why}\n${log.slice(-3000)}`));
      };
      const timer = setTimeout(() => fail(`not ready within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
      child.once('error', (e) => fail(e.message));
      child.once('exit', (code, signal) => fail(`exited (${signal ?? code})`));
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        if (ready) return; // why: keep draining the pipe, or etcd blocks on a full stderr
        log = (log + chunk).slice(-20_000);
        if (READY.test(log)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  async restart(): Promise<void> {
    await this.#signal('SIGTERM');
    await this.start();
  }

  async kill(): Promise<void> {
    await this.#signal('SIGKILL');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#signal('SIGTERM');
    await rm(this.dataDir, { recursive: true, force: true });
    dirs.delete(this.dataDir);
  }

  /** Sends `sig` and waits for the exit (SIGKILL after 5 s). */
  async #signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(sig);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

const run = promisify(execFile);

/** A CA, a server certificate for IP 127.0.0.1 and a client certificate (P-256, valid 1 day). */
export async function makeEtcdTls(): Promise<EtcdTlsFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'truss-etcd-tls-'));
  dirs.add(dir);
  const f = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const openssl = (...args: string[]): Promise<unknown> => run('openssl', args, { cwd: dir });
  const makeCa = (name: string): Promise<unknown> =>
    openssl(
      ...['req', '-x509', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`), '-days', '1'],
      ...['-subj', `/CN=truss-test-${name}`, '-addext', 'basicConstraints=critical,CA:TRUE'],
      ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    );
  await makeCa('ca');
  await makeCa('other-ca');
  const leaf = async (name: string, cn: string, ext: string): Promise<void> => {
    await writeFile(f(`${name}.ext`), ext);
    await openssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    await openssl(
      ...['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial'],
      ...['-out', f(`${name}.crt`), '-days', '1', '-extfile', f(`${name}.ext`)],
    );
  };
  await leaf(
    'server',
    '127.0.0.1',
    'subjectAltName=IP:127.0.0.1\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  await leaf('client', 'truss', 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  return {
    dir,
    ca: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    otherCa: f('other-ca.crt'),
    cleanup: async () => {
      await rm(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
}

export interface TcpProxy {
  /** "127.0.0.1:PORT" */
  readonly endpoint: string;
  /** close every connection and refuse new ones (like an etcd that went away) */
  cut(): void;
  /**
   * A network black hole: connections stay open (new ones are accepted) but no byte moves in
   * either direction until restore(), which delivers what was held, as a healed network would.
   */
  blackhole(): void;
  /** forward again */
  restore(): void;
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  upstream: Socket | undefined;
  /** bytes held while black-holed, per direction */
  toUpstream: Buffer[];
  toClient: Buffer[];
}

/** A TCP proxy on 127.0.0.1 to `target` ("host:port") that tests can break at will. */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const colon = target.lastIndexOf(':');
  const host = target.slice(0, colon);
  const port = Number(target.slice(colon + 1));
  let mode: 'forward' | 'refuse' | 'blackhole' = 'forward';
  const pairs = new Set<Pair>();
  const drop = (pair: Pair): void => {
    pairs.delete(pair);
    pair.client.destroy();
    pair.upstream?.destroy();
  };
  const flush = (pair: Pair): void => {
    if (!pair.upstream) connectUpstream(pair);
    for (const b of pair.toUpstream) pair.upstream?.write(b);
    for (const b of pair.toClient) pair.client.write(b);
    pair.toUpstream = [];
    pair.toClient = [];
  };
  const connectUpstream = (pair: Pair): void => {
    const upstream = tcpConnect({ host, port });
    pair.upstream = upstream;
    upstream.on('data', (b: Buffer) => (mode === 'forward' ? pair.client.write(b) : pair.toClient.push(b)));
    upstream.on('error', () => drop(pair));
    upstream.on('close', () => drop(pair));
  };
  const server: Server = createServer((client) => {
    if (mode === 'refuse') return void client.destroy();
    const pair: Pair = { client, upstream: undefined, toUpstream: [], toClient: [] };
    pairs.add(pair);
    client.on('data', (b: Buffer) => {
      if (mode === 'forward' && pair.upstream) pair.upstream.write(b);
      else pair.toUpstream.push(b);
    });
    client.on('error', () => drop(pair));
    client.on('close', () => drop(pair));
    if (mode === 'forward') connectUpstream(pair);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address');
  return {
    endpoint: `127.0.0.1:${address.port}`,
    cut: () => {
      mode = 'refuse';
      for (const pair of [...pairs]) drop(pair);
    },
    blackhole: () => {
      mode = 'blackhole';
    },
    restore: () => {
      mode = 'forward';
      for (const pair of pairs) flush(pair);
    },
    close: async () => {
      mode = 'refuse';
      for (const pair of [...pairs]) drop(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
