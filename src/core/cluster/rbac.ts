/**
 * etcd RBAC for one truss host (pure): with the owner layout (model.ts) every key a host writes
 * is under one of its own prefixes, so etcd's prefix permissions can let each host write its
 * own records only, and read everyone's. `truss cluster rbac --node ID` prints this plan as
 * etcdctl commands, or applies it through the etcd API (--apply, store/etcd-rbac.ts).
 *
 * Per host ID: user truss-ID with role truss-ID:
 *   read       --prefix /truss/              (every host's records, and the old layout's)
 *   readwrite  /truss/v2/nodes/ID            (its node record: one key)
 *   readwrite  --prefix /truss/v2/{networks,members,blocks,addrs,shared,names}/ID/
 * Lease grants need no permission; revoking a lease needs write on its keys (its own).
 */
import { CLUSTER_KINDS, clusterKeys, isValidNodeName } from './model.ts';

export interface RbacGrant {
  readonly permission: 'read' | 'readwrite';
  readonly key: string;
  /** the permission covers every key starting with `key` */
  readonly prefix: boolean;
}

export interface RbacPlan {
  readonly node: string;
  readonly user: string;
  readonly role: string;
  readonly grants: readonly RbacGrant[];
}

export const READ_PREFIX = '/truss/';

export const rbacName = (node: string): string => `truss-${node}`;

/** The role and user of host `node` (a node id, as `truss status` shows it). */
export function rbacPlan(node: string): RbacPlan {
  if (!isValidNodeName(node)) throw new Error(`node id ${JSON.stringify(node)}: expected [a-z0-9][a-z0-9.-]{0,62}`);
  const grants: RbacGrant[] = [{ permission: 'read', key: READ_PREFIX, prefix: true }];
  for (const kind of CLUSTER_KINDS) {
    grants.push({ permission: 'readwrite', key: clusterKeys.ownerPrefix(kind, node), prefix: kind !== 'nodes' });
  }
  return { node, user: rbacName(node), role: rbacName(node), grants };
}

/** The plan as etcdctl (v3, etcd >= 3.4) commands, with the one-time admin setup as comments. */
export function renderEtcdctl(plan: RbacPlan): string {
  const lines = [
    `# etcd RBAC for truss host ${plan.node}: it may write its own records only, and read every host's.`,
    '# Once per etcd cluster, as an admin (etcd\'s "root" user holds the "root" role: it may do anything):',
    '#   etcdctl user add root --interactive=false < ROOT_PASSWORD_FILE',
    '#   etcdctl user grant-role root root',
    '#   etcdctl auth enable',
    '# Then, as root (etcdctl --user root:PASSWORD, or ETCDCTL_USER), for this host:',
    `etcdctl role add ${plan.role}`,
    ...plan.grants.map(
      (g) => `etcdctl role grant-permission ${plan.role} ${g.prefix ? '--prefix=true ' : ''}${g.permission} ${g.key}`,
    ),
    `etcdctl user add ${plan.user} --interactive=false < PASSWORD_FILE`,
    `etcdctl user grant-role ${plan.user} ${plan.role}`,
    `# On host ${plan.node}: truss serve ... --etcd-user ${plan.user} --etcd-password-file PASSWORD_FILE`,
    `#   (or a client certificate with CN=${plan.user}, when etcd runs with --client-cert-auth)`,
    '# Upgrade every host to the owner layout before auth enable: a host moves its old',
    '# /truss/v1/cluster/ records at start, which needs write access there.',
    "# Under RBAC `truss cluster forget ID` is refused (a host may not delete another host's records);",
    '# as root: etcdctl del --prefix /truss/v2/KIND/ID/ for each KIND above, and etcdctl del /truss/v2/nodes/ID.',
  ];
  return `${lines.join('\n')}\n`;
}
