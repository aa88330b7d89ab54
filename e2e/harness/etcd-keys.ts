/** Keys etcd itself holds under a prefix, read through its JSON gateway from inside the underlay. */
import type { Underlay } from './underlay.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Every key starting with prefix (whose last character is not U+FFFF), sorted as etcd sorts them. */
export async function etcdKeys(ul: Underlay, prefix: string): Promise<string[]> {
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const body = JSON.stringify({ key: b64(prefix), range_end: b64(end), keys_only: true });
  const r = await ul.exec(['curl', '-s', '--max-time', '3', '-X', 'POST', `${ul.etcd.url}/v3/kv/range`, '-d', body]);
  if (r.code !== 0) throw new Error(`etcd range ${prefix}: ${r.stderr.trim()}`);
  const kvs = (JSON.parse(r.stdout) as { kvs?: { key: string }[] }).kvs ?? [];
  return kvs.map((kv) => Buffer.from(kv.key, 'base64').toString());
}
