/**
 * The composition root of `truss cluster rbac --apply`, beside main.ts: the one command that
 * talks to etcd itself, as an etcd admin, before any daemon has credentials. It reads the
 * password and TLS files and wires store/etcd-rbac.ts; cli/cluster-rbac.ts parses the command
 * line and builds the plan (core/cluster/rbac.ts).
 */
import { readFileSync } from 'node:fs';
import { readEtcdPassword } from './cluster/setup.ts';
import type { RbacPlan } from './core/cluster/rbac.ts';

export interface RbacApplyRequest {
  readonly endpoints: readonly string[];
  /** --password-file: the password of the host's new etcd user */
  readonly passwordFile: string;
  readonly tlsFiles?: { readonly ca: string; readonly cert: string; readonly key: string };
  /** --etcd-user/--etcd-password-file: the etcd admin this runs as */
  readonly admin?: { readonly user: string; readonly passwordFile: string };
}

export async function applyRbacPlan(req: RbacApplyRequest, plan: RbacPlan): Promise<void> {
  const password = readEtcdPassword(req.passwordFile);
  // why lazy: etcd3 (gRPC, protobufjs) is slow to load, and only --apply needs it
  const { applyRbac } = await import('./store/etcd-rbac.ts');
  await applyRbac(
    {
      endpoints: req.endpoints,
      ...(req.tlsFiles
        ? {
            tls: {
              ca: readFileSync(req.tlsFiles.ca),
              cert: readFileSync(req.tlsFiles.cert),
              key: readFileSync(req.tlsFiles.key),
            },
          }
        : {}),
      ...(req.admin ? { auth: { user: req.admin.user, password: readEtcdPassword(req.admin.passwordFile) } } : {}),
    },
    plan,
    password,
  );
}
