/**
 * `truss cluster rbac --node ID [--apply ...]`: etcd RBAC for one host (core/cluster/rbac.ts).
 * Prints the etcdctl commands, or with --apply runs them through the etcd API as an etcd admin.
 * The one command that talks to etcd itself (it runs before any daemon has credentials): that
 * wiring is the composition root src/cluster-rbac.ts; this file parses and plans.
 */
import { rbacPlan, renderEtcdctl } from '../core/cluster/rbac.ts';
import { isTrussError } from '../core/errors.ts';
import { parseStoreUrl, plaintextProblem } from '../core/store-url.ts';
import { FLAGS, RBAC_USAGE } from './commands.ts';
import { type CliIo, parseCommandLine, reportUsageError, UsageError } from './usage.ts';

export { RBAC_USAGE };

/** Returns the exit code: 0 done, 1 failed, 2 bad command line. */
export async function rbacCommand(args: readonly string[], io: CliIo): Promise<number> {
  try {
    const v = parseCommandLine(args, FLAGS.rbac).values;
    if (v.node === undefined) throw new UsageError('cluster rbac: missing --node ID');
    let plan: ReturnType<typeof rbacPlan>;
    try {
      plan = rbacPlan(v.node);
    } catch (e) {
      throw new UsageError(`cluster rbac: --node ${e instanceof Error ? e.message.replace(/^node id /, '') : e}`);
    }
    if (!v.apply) {
      io.stdout(renderEtcdctl(plan));
      return 0;
    }
    if (v['password-file'] === undefined) throw new UsageError('cluster rbac --apply: missing --password-file FILE');
    const url = parseStoreUrl(v.store ?? (io.env.TRUSS_STORE || undefined));
    if (url.kind !== 'etcd') throw new UsageError('cluster rbac --apply: missing --store etcd://HOST:PORT');
    const tlsFiles = [v['etcd-ca'], v['etcd-cert'], v['etcd-key']];
    const tlsGiven = tlsFiles.filter((x) => x !== undefined).length;
    if (tlsGiven !== 0 && tlsGiven !== 3) throw new UsageError('--etcd-ca, --etcd-cert and --etcd-key go together');
    if ((v['etcd-user'] === undefined) !== (v['etcd-password-file'] === undefined)) {
      throw new UsageError('--etcd-user and --etcd-password-file go together');
    }
    const plain = plaintextProblem(url.endpoints, tlsGiven === 3, v['etcd-insecure'] === true);
    if (plain) throw plain;
    // the files and etcd are wired in the composition root src/cluster-rbac.ts (loaded only for --apply)
    const { applyRbacPlan } = await import('../cluster-rbac.ts');
    const [ca, cert, key] = tlsFiles;
    const [user, adminPasswordFile] = [v['etcd-user'], v['etcd-password-file']];
    await applyRbacPlan(
      {
        endpoints: url.endpoints,
        passwordFile: v['password-file'],
        ...(ca !== undefined && cert !== undefined && key !== undefined ? { tlsFiles: { ca, cert, key } } : {}),
        ...(user !== undefined && adminPasswordFile !== undefined
          ? { admin: { user, passwordFile: adminPasswordFile } }
          : {}),
      },
      plan,
    );
    io.stdout(
      `etcd role and user ${plan.user} are set up: host ${plan.node} may write its own records only\n` +
        `run truss serve there with --etcd-user ${plan.user} --etcd-password-file FILE\n`,
    );
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof UsageError) return reportUsageError(e, RBAC_USAGE, io);
    io.stderr(`truss: ${message}\n`);
    return isTrussError(e) && e.kind === 'invalid' ? 2 : 1;
  }
}
