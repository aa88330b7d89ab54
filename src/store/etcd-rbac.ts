/**
 * Applying an RBAC plan (core/cluster/rbac.ts) through etcd's auth API, as an etcd admin:
 * `truss cluster rbac --node ID --apply`. Idempotent: an existing role or user is kept (the
 * user's password is set again), grants are added again (etcd merges them).
 */
import { Etcd3, type IOptions, Range } from 'etcd3';
import type { RbacPlan } from '../core/cluster/rbac.ts';
import { errors } from '../core/errors.ts';
import { firstLine } from './etcd-shared.ts';

export interface EtcdAdminOptions {
  readonly endpoints: readonly string[];
  readonly tls?: { readonly ca: Buffer; readonly cert: Buffer; readonly key: Buffer };
  readonly auth?: { readonly user: string; readonly password: string };
  readonly timeoutMs?: number;
}

const exists = (e: unknown): boolean => /already exists/.test(String(e));

export async function applyRbac(opts: EtcdAdminOptions, plan: RbacPlan, password: string): Promise<void> {
  const options: IOptions = { hosts: [...opts.endpoints] };
  if (opts.tls)
    options.credentials = { rootCertificate: opts.tls.ca, certChain: opts.tls.cert, privateKey: opts.tls.key };
  if (opts.auth) options.auth = { username: opts.auth.user, password: opts.auth.password };
  const client = new Etcd3(options);
  const call = () => ({ deadline: Date.now() + (opts.timeoutMs ?? 5000) });
  try {
    const role = client.role(plan.role);
    await role.create(call()).catch((e: unknown) => {
      if (!exists(e)) throw e;
    });
    for (const g of plan.grants) {
      await role.grant(
        g.prefix
          ? { permission: g.permission === 'read' ? 'Read' : 'Readwrite', range: Range.prefix(g.key) }
          : { permission: g.permission === 'read' ? 'Read' : 'Readwrite', key: g.key },
        call(),
      );
    }
    const user = client.user(plan.user);
    await user.create(password, call()).catch(async (e: unknown) => {
      if (!exists(e)) throw e;
      await user.setPassword(password, call());
    });
    await user.addRole(plan.role, call());
  } catch (e) {
    throw errors.storeUnavailable(
      `etcd at ${opts.endpoints.join(',')} refused the RBAC setup of ${plan.user}: ${firstLine(String(e))}` +
        ' (it needs an etcd admin: --etcd-user root --etcd-password-file FILE, or root client certificates)',
      e,
    );
  } finally {
    client.close();
  }
}
