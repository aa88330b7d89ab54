/**
 * Names across hosts (issue 16): what truss knows of the container behind each endpoint, and
 * port-policy sources chosen by container name or label instead of by address.
 *
 * The plugin protocol never carries a container's name or labels. The daemon learns them off
 * the request path, from Docker's event stream (docker/), and in cluster mode each host
 * publishes its own endpoints' names under its lease in etcd (cluster/). Both feed one
 * catalog of NamedEndpoint; DNS (dns/) and the name/label policy sets are derived from it.
 */

/** A port-policy source given by container name (glob) or label, instead of a CIDR. */
export type PeerSelector =
  | { readonly by: 'name'; readonly glob: string }
  /** value absent: any container carrying the label key */
  | { readonly by: 'label'; readonly key: string; readonly value?: string };

/** One endpoint with the name, aliases and labels of its container, on this host or another. */
export interface NamedEndpoint {
  /** Docker's endpoint id on the host that owns it (64 hex) */
  readonly endpointId: string;
  /** node id of the host that runs the container */
  readonly node: string;
  /** the Docker network's name (equal on every host of a cluster network) */
  readonly networkName: string;
  /** the Docker network id: set for this host's endpoints only (ids differ between hosts) */
  readonly networkId?: string;
  /** truss.cluster of the network, when it spans hosts */
  readonly cluster?: string;
  /** Docker's container id (64 hex) */
  readonly containerId: string;
  /** the container's name, without Docker's leading '/' */
  readonly name: string;
  /** its network-scoped aliases on this network (--network-alias; Docker may add the short id) */
  readonly aliases: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** bare IPs of the endpoint (v4 and/or v6), as truss assigned them */
  readonly addresses: readonly string[];
}

/** Docker's container-name rule, with the glob characters for selectors. */
export const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const GLOB = /^[a-zA-Z0-9_.*?-]+$/;
/** label keys and values in a selector: no ',', '=', '@' or spaces (the spec's separators) */
const LABEL_KEY = /^[a-zA-Z0-9][a-zA-Z0-9_./-]*$/;
const LABEL_VALUE = /^[a-zA-Z0-9_./:+-]*$/;

export const isValidNameGlob = (s: string): boolean => s.length <= 128 && GLOB.test(s);
export const isValidLabelKey = (s: string): boolean => s.length <= 128 && LABEL_KEY.test(s);
export const isValidLabelValue = (s: string): boolean => s.length <= 256 && LABEL_VALUE.test(s);

/** The selector's canonical text, as written after '@': `name=api-*`, `label=role=api`, `label=role`. */
export function selectorText(s: PeerSelector): string {
  if (s.by === 'name') return `name=${s.glob}`;
  return s.value === undefined ? `label=${s.key}` : `label=${s.key}=${s.value}`;
}

/** Shell-style glob over a whole name: `*` any run, `?` one character; case-sensitive like Docker's names. */
export function globMatch(glob: string, name: string): boolean {
  const re = new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\-]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(name);
}

/** Whether the container behind `e` is one the selector names. */
export function selects(s: PeerSelector, e: Pick<NamedEndpoint, 'name' | 'labels'>): boolean {
  if (s.by === 'name') return globMatch(s.glob, e.name);
  if (!Object.hasOwn(e.labels, s.key)) return false;
  return s.value === undefined || e.labels[s.key] === s.value;
}
