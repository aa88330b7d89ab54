/**
 * The port-policy language: parse, print and evaluate ingress allow-lists. Pure.
 *
 *   tcp/80,tcp/8000-8100,udp/53@fd00:7::/64,icmp@198.18.0.0/16     none
 *   tcp/5432@name=api-*,tcp/8000-8100@label=tier,icmp@label=role=web
 *
 * Only canonical text is accepted (lower case, decimal ports without sign or leading
 * zeros, ranges with from < to, sources as core/ip prints network prefixes, no spaces,
 * no empty entries, no duplicates), so every accepted text prints back to itself and
 * nothing but that narrow alphabet can ever reach an nft batch or a log line. A source
 * by container (name=, label=) is checked with core/names' validators instead: it never
 * reaches nft text (the kernel sees only a hashed set name and addresses).
 */
import { errors, type TrussError } from '../errors.ts';
import {
  formatIp,
  formatPrefix,
  isNetworkAddress,
  networkOf,
  type Prefix,
  parseIp,
  parsePrefix,
  prefixContains,
} from '../ip.ts';
import {
  isValidLabelKey,
  isValidLabelValue,
  isValidNameGlob,
  type NamedEndpoint,
  type PeerSelector,
  selectorText,
  selects,
} from '../names/model.ts';
import type { IngressPolicy, IngressRule, PolicyProto } from './model.ts';

export const MAX_INGRESS_RULES = 65_536;
/** Longest canonical rule: "tcp/65535-65535@ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" is 59. */
const MAX_RULE_LENGTH = 64;
/** Longest selector rule: "tcp/65535-65535@label=" + a 128-character key + "=" + a 256-character value is 407. */
const MAX_SELECTOR_RULE_LENGTH = 407;
export const INGRESS_SYNTAX =
  'expected proto/port[-port][@source], icmp[@source] or none; a source is a CIDR, name=<glob> or label=<key>[=<value>]';
const SELECTOR = /^(?:name|label)=/;
const SELECTOR_SYNTAX = 'write name=<container name or glob> or label=<key>[=<value>]';

const ALLOWED = /[^a-z0-9./:@-]/u;
const ICMP = /^icmp(?:@(.*))?$/;
const PORT = /^[1-9][0-9]{0,4}$/;

/** A token as it appears in a message: quoted, escaped, and cut short. */
const show = (token: string): string =>
  JSON.stringify(token.length > MAX_RULE_LENGTH ? `${token.slice(0, MAX_RULE_LENGTH)}…` : token);

function bad(key: string, token: string, why: string): TrussError {
  return errors.badOption(`option ${key}: ${show(token)} is not a valid rule: ${why}`);
}

function parsePort(key: string, token: string, text: string): number {
  if (text === '') throw bad(key, token, `missing port number; ${INGRESS_SYNTAX}`);
  if (PORT.test(text) && Number(text) <= 65_535) return Number(text);
  if (/^[0-9]+$/.test(text) && !/^0[0-9]/.test(text)) throw bad(key, token, 'port must be 1-65535');
  throw bad(key, token, `port ${show(text)} must be a decimal number 1-65535 without sign or leading zeros`);
}

/** `known`: sources already accepted in this policy (they repeat; parsing them is the costly part). */
function parseSource(key: string, token: string, text: string, known: Set<string>): string {
  if (known.has(text)) return text;
  const p = parsePrefix(text);
  if (p === undefined) {
    if (/^(?:name|label)\b/.test(text)) throw bad(key, token, `source ${show(text)}: ${SELECTOR_SYNTAX}`);
    const ip = parseIp(text);
    if (ip !== undefined) {
      const host = `${formatIp(ip)}/${ip.family === 4 ? 32 : 128}`;
      throw bad(key, token, `source ${show(text)} must be a network prefix (for one host write ${host})`);
    }
    throw bad(key, token, `source ${show(text)} is not an IPv4 or IPv6 network prefix`);
  }
  if (!isNetworkAddress(p)) {
    throw bad(key, token, `source ${show(text)} has host bits set (did you mean ${formatPrefix(networkOf(p))}?)`);
  }
  // IPv4 text that parsePrefix accepts is canonical already (no leading zeros anywhere); IPv6 may not be
  if (p.family === 6) {
    const canonical = formatPrefix(p);
    if (canonical !== text) throw bad(key, token, `source ${show(text)} is not in canonical form (write ${canonical})`);
  }
  known.add(text);
  return text;
}

/** A source by container: `name=<glob>`, `label=<key>` or `label=<key>=<value>` (text after '@'). */
function parseSelector(key: string, token: string, text: string): PeerSelector {
  if (text.startsWith('name=')) {
    const glob = text.slice('name='.length);
    if (glob === '') throw bad(key, token, `name= needs a container name or glob (name=api-*); ${SELECTOR_SYNTAX}`);
    if (glob.length > 128) throw bad(key, token, `name ${show(glob)} is longer than 128 characters`);
    if (!isValidNameGlob(glob)) {
      throw bad(key, token, `name ${show(glob)} may hold only letters, digits, '_', '.', '-' and the globs '*' '?'`);
    }
    return { by: 'name', glob };
  }
  const rest = text.slice('label='.length);
  const eq = rest.indexOf('=');
  const label = eq < 0 ? rest : rest.slice(0, eq);
  if (label === '') throw bad(key, token, `label= needs a key (label=role or label=role=api); ${SELECTOR_SYNTAX}`);
  if (!isValidLabelKey(label)) {
    throw bad(
      key,
      token,
      `label key ${show(label)} must start with a letter or digit and hold only letters, digits, '_', '.', '/', '-' (at most 128)`,
    );
  }
  if (eq < 0) return { by: 'label', key: label };
  const value = rest.slice(eq + 1);
  if (!isValidLabelValue(value)) {
    throw bad(
      key,
      token,
      `label value ${show(value)} may hold only letters, digits, '_', '.', '/', ':', '+', '-' (no ',', '=', '@' or spaces; at most 256)`,
    );
  }
  return { by: 'label', key: label, value };
}

/** A rule's protocol and ports (`tcp/80`, `udp/53-54`, `icmp`): the part before any '@'. */
function parseHead(key: string, token: string, head: string): Pick<IngressRule, 'proto' | 'ports'> {
  if (head === 'icmp') return { proto: 'icmp' };
  if (head.startsWith('icmp/')) throw bad(key, token, `icmp takes no port; ${INGRESS_SYNTAX}`);
  const slash = head.indexOf('/');
  const proto = slash < 0 ? head : head.slice(0, slash);
  if (proto !== 'tcp' && proto !== 'udp') {
    throw bad(key, token, `unknown protocol ${show(proto)} (tcp, udp or icmp); ${INGRESS_SYNTAX}`);
  }
  if (slash < 0) throw bad(key, token, `${proto} needs a port or port range; ${INGRESS_SYNTAX}`);
  const range = head.slice(slash + 1).split('-');
  if (range.length > 2) throw bad(key, token, `a port range is from-to; ${INGRESS_SYNTAX}`);
  const from = parsePort(key, token, range[0] ?? '');
  const to = range[1] === undefined ? from : parsePort(key, token, range[1]);
  if (range[1] !== undefined && from >= to) {
    throw bad(key, token, `a port range needs from < to (for one port write ${proto}/${from})`);
  }
  return { proto, ports: { from, to } };
}

function checkAlphabet(key: string, token: string, text: string): void {
  const odd = ALLOWED.exec(text)?.[0];
  if (odd === undefined) return;
  const why = /[A-Z]/.test(odd) ? 'must be lower case' : `character ${JSON.stringify(odd)} is not allowed`;
  throw bad(key, token, `${why}; ${INGRESS_SYNTAX}`);
}

function parseRule(key: string, token: string, known: Set<string>): IngressRule {
  if (token === '') throw bad(key, token, `empty entry (a stray or trailing comma?); ${INGRESS_SYNTAX}`);
  const at = token.indexOf('@');
  const tail = at < 0 ? undefined : token.slice(at + 1);
  if (tail !== undefined && SELECTOR.test(tail)) {
    if (token.length > MAX_SELECTOR_RULE_LENGTH) throw bad(key, token, `too long; ${INGRESS_SYNTAX}`);
    const head = token.slice(0, at);
    checkAlphabet(key, token, head);
    return { ...parseHead(key, token, head), peer: parseSelector(key, token, tail) };
  }
  if (token.length > MAX_RULE_LENGTH) throw bad(key, token, `too long; ${INGRESS_SYNTAX}`);
  checkAlphabet(key, token, token);
  if (token === 'none') throw bad(key, token, 'none stands alone: it is the whole value, not one rule of a list');
  const icmp = ICMP.exec(token);
  if (icmp) {
    const src = icmp[1];
    return src === undefined ? { proto: 'icmp' } : { proto: 'icmp', source: parseSource(key, token, src, known) };
  }
  const rule = parseHead(key, token, tail === undefined ? token : token.slice(0, at));
  return tail === undefined ? rule : { ...rule, source: parseSource(key, token, tail, known) };
}

/**
 * Parse an ingress policy. `key` names the option in messages (OPT_INGRESS, or a CLI flag).
 * Throws errors.badOption naming the key and the offending rule.
 */
export function parseIngress(key: string, text: string): IngressPolicy {
  if (typeof text !== 'string' || text === '') {
    throw errors.badOption(`option ${key}: empty value; use "none" for nothing inbound (${INGRESS_SYNTAX})`);
  }
  if (text === 'none') return [];
  let commas = 0;
  for (let i = text.indexOf(','); i >= 0; i = text.indexOf(',', i + 1)) {
    if (++commas >= MAX_INGRESS_RULES) {
      throw errors.badOption(`option ${key}: too many rules (at most ${MAX_INGRESS_RULES})`);
    }
  }
  const seen = new Set<string>();
  const sources = new Set<string>();
  const rules: IngressRule[] = [];
  for (const token of text.split(',')) {
    const rule = parseRule(key, token, sources);
    if (seen.has(token)) throw bad(key, token, 'duplicate rule');
    seen.add(token);
    rules.push(rule);
  }
  return rules;
}

export function formatRule(r: IngressRule): string {
  const ports =
    r.ports === undefined ? '' : r.ports.to === r.ports.from ? `/${r.ports.from}` : `/${r.ports.from}-${r.ports.to}`;
  const from = r.peer !== undefined ? `@${selectorText(r.peer)}` : r.source === undefined ? '' : `@${r.source}`;
  return `${r.proto}${ports}${from}`;
}

/** The canonical text of a policy: `none` for `[]`; parseIngress(k, formatIngress(p)) deep-equals p. */
export function formatIngress(p: IngressPolicy): string {
  return p.length === 0 ? 'none' : p.map(formatRule).join(',');
}

export interface Flow {
  readonly proto: PolicyProto;
  /** destination port (tcp/udp) */
  readonly port?: number;
  /** bare source IP */
  readonly source: string;
  /** the container the flow comes from, when known: what name= and label= rules are matched against */
  readonly peer?: Pick<NamedEndpoint, 'name' | 'labels'>;
}

const sourceCache = new WeakMap<IngressRule, Prefix | null>();

function sourceOf(r: IngressRule): Prefix | null {
  let p = sourceCache.get(r);
  if (p === undefined) {
    p = r.source === undefined ? null : (parsePrefix(r.source) ?? null);
    sourceCache.set(r, p);
  }
  return p;
}

function ruleAdmits(r: IngressRule, flow: Flow, ip: NonNullable<ReturnType<typeof parseIp>>): boolean {
  if (r.proto !== flow.proto) return false;
  if (r.ports !== undefined && (flow.port === undefined || flow.port < r.ports.from || flow.port > r.ports.to)) {
    return false;
  }
  if (r.peer !== undefined) return flow.peer !== undefined && selects(r.peer, flow.peer);
  if (r.source === undefined) return true;
  const p = sourceOf(r);
  return p !== null && prefixContains(p, ip);
}

/**
 * Whether the policy admits a new inbound flow. Fails closed: a source that is not a
 * bare IP, or a tcp/udp flow without a port, is admitted by no rule, and a flow whose
 * container is not known (no `peer`) by no name= or label= rule.
 */
export function admits(p: IngressPolicy, flow: Flow): boolean {
  return admittingRule(p, flow) !== undefined;
}

/** The first rule of the policy that admits the flow (as admits() decides), or undefined. */
export function admittingRule(p: IngressPolicy, flow: Flow): IngressRule | undefined {
  const ip = parseIp(flow.source);
  if (ip === undefined) return undefined;
  return p.find((r) => ruleAdmits(r, flow, ip));
}
