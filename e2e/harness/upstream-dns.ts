/**
 * Starts the stand-in upstream DNS server (dns-upstream.ts) in the underlay's namespace, for the
 * names suite and the names bench: resolves once it listens; kill() the process to stop it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { REPO_ROOT } from './paths.ts';
import { UNDERLAY_NETNS } from './underlay.ts';

/** A server at `address` answering `table` (`NAME=IPv4,...`), NXDOMAIN otherwise. */
export async function startUpstreamDns(address: string, table: string): Promise<ChildProcess> {
  const p = spawn(
    'nsenter',
    [
      `--net=/run/netns/${UNDERLAY_NETNS}`,
      process.execPath,
      `${REPO_ROOT}/e2e/harness/dns-upstream.ts`,
      address,
      table,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    p.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    p.on('exit', (code) => reject(new Error(`dns-upstream at ${address} exited ${code}`)));
  });
  // it logs every query: keep reading, never let a full pipe block it
  p.stdout?.resume();
  return p;
}
