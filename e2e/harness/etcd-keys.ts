/**
 * What etcd itself holds under a prefix, read through its JSON gateway (curl) from a namespace
 * that reaches it: the underlay for the underlay's etcd, a host for an etcd of its own.
 */
import type { RunOptions, RunResult } from './exec.ts';
import type { Underlay } from './underlay.ts';

/** A namespace to run curl in (an Underlay or a Host). */
export interface EtcdReach {
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Every key and value (base64) starting with prefix (whose last character is not U+FFFF), sorted as etcd sorts them. */
async function range(from: EtcdReach, url: string, prefix: string, keysOnly: boolean) {
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const body = JSON.stringify({ key: b64(prefix), range_end: b64(end), ...(keysOnly ? { keys_only: true } : {}) });
  const r = await from.exec(['curl', '-s', '--max-time', '3', '-X', 'POST', `${url}/v3/kv/range`, '-d', body]);
  if (r.code !== 0) throw new Error(`etcd range ${prefix}: ${r.stderr.trim()}`);
  return (JSON.parse(r.stdout) as { kvs?: { key: string; value?: string }[] }).kvs ?? [];
}

/** Every key starting with prefix in the underlay's etcd. */
export async function etcdKeys(ul: Underlay, prefix: string): Promise<string[]> {
  return (await range(ul, ul.etcd.url, prefix, true)).map((kv) => Buffer.from(kv.key, 'base64').toString());
}

/** Every key starting with prefix and its JSON value, from the etcd at url (http://host:port) as `from` reaches it. */
export async function etcdRecords<T = Record<string, unknown>>(
  from: EtcdReach,
  url: string,
  prefix: string,
): Promise<Map<string, T>> {
  const kvs = await range(from, url, prefix, false);
  return new Map(
    kvs.map((kv) => [
      Buffer.from(kv.key, 'base64').toString(),
      JSON.parse(Buffer.from(kv.value ?? '', 'base64').toString()) as T,
    ]),
  );
}
