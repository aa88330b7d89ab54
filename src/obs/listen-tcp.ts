/**
 * Listen on a TCP address (--metrics-address), turning the bind errors an operator can cause
 * into a message that names the flag and the fix.
 */
import type http from 'node:http';
import { errors } from '../core/errors.ts';
import { formatListenAddress, type ListenAddress } from '../core/listen-address.ts';

const FIX: Readonly<Record<string, string>> = {
  EADDRINUSE: 'another program listens there: pick a free port or stop it',
  EADDRNOTAVAIL: 'no interface of this host has that address: use one it has (127.0.0.1 for the host only)',
  EACCES: 'ports below 1024 need privileges truss lacks here: use a port above 1023',
  EAFNOSUPPORT: 'this host has no IPv6: use an IPv4 address',
};

export function listenTcp(server: http.Server, a: ListenAddress, flag: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException): void => {
      const fix = (e.code && FIX[e.code]) ?? e.message;
      reject(errors.badOption(`${flag} ${formatListenAddress(a)}: cannot listen (${e.code ?? 'error'}): ${fix}`, e));
    };
    server.once('error', fail);
    server.listen({ host: a.host, port: a.port, exclusive: true }, () => {
      server.off('error', fail);
      resolve();
    });
  });
}
