import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PolicyObject, SelectorSetObject } from '../../core/desired.ts';
import { selectorSetName } from '../../core/naming.ts';
import { OPT_INGRESS } from '../../core/policy/model.ts';
import { parseIngress } from '../../core/policy/parse.ts';
import { flowAdmitted } from './conntrack.ts';
import { renderPolicy, renderPolicyBase } from './policy.ts';
import { diffPolicies, expectedPolicyBlocks } from './policy-check.ts';
import { diffSelectors, renderSelector, renderSelectorRemoval } from './policy-selectors.ts';
import { checkPolicyObject } from './policy-sets.ts';

const API = selectorSetName({ by: 'name', glob: 'api-*' });
const OPS = selectorSetName({ by: 'label', key: 'role', value: 'ops' });

const S: SelectorSetObject = {
  name: API,
  selector: { by: 'name', glob: 'api-*' },
  addresses4: ['198.18.0.6', '198.18.0.5'],
  addresses6: ['fd00:0::5'],
};

const P: PolicyObject = {
  name: 'ep_0123456789ab',
  endpointId: `0123456789ab${'0'.repeat(52)}`,
  networkId: 'f'.repeat(64),
  addresses: ['198.18.40.3'],
  rules: parseIngress(
    OPT_INGRESS,
    'tcp/80,tcp/5432@name=api-*,tcp/8000-8100@name=api-*,udp/53@name=api-*,icmp@label=role=ops,tcp/9000@label=role=ops',
  ),
};

describe('renderSelector', () => {
  it('replaces one selector’s members in one transaction: flush + add set with elements, never add element (golden)', () => {
    const T = 'inet truss_policy';
    assert.equal(
      renderSelector(S),
      `${renderPolicyBase()}${[
        `add set ${T} ${API}_4 { type ipv4_addr; }`,
        `flush set ${T} ${API}_4`,
        `add set ${T} ${API}_4 { type ipv4_addr; elements = { 198.18.0.5, 198.18.0.6 } }`,
        `add set ${T} ${API}_6 { type ipv6_addr; }`,
        `flush set ${T} ${API}_6`,
        `add set ${T} ${API}_6 { type ipv6_addr; elements = { fd00::5 } }`,
      ].join('\n')}\n`,
    );
    assert.doesNotMatch(renderSelector(S), /element (?!s)|add element|delete element/);
  });

  it('an empty selector keeps its (empty) sets', () => {
    const text = renderSelector({ ...S, addresses4: [], addresses6: [] });
    assert.match(text, new RegExp(`flush set inet truss_policy ${API}_4\nadd set inet truss_policy ${API}_6`));
    assert.doesNotMatch(text, /elements/);
  });

  it('refuses anything not validated before it reaches nft text', () => {
    assert.throws(() => renderSelector({ ...S, name: 'sel_x; flush ruleset' }), { code: 'TRUSS_ERR_ID_INVALID' });
    assert.throws(() => renderSelector({ ...S, addresses4: ['198.18.0.5 }'] }), /invalid address/);
    assert.throws(() => renderSelector({ ...S, addresses4: ['fd00::1'] }), /is not IPv4/);
    assert.throws(() => renderSelectorRemoval('ep_0123456789ab'), { code: 'TRUSS_ERR_ID_INVALID' });
  });

  it('removal deletes both sets, absent ones being no error', () => {
    assert.equal(
      renderSelectorRemoval(API),
      `add set inet truss_policy ${API}_4 { type ipv4_addr; }\ndelete set inet truss_policy ${API}_4\n` +
        `add set inet truss_policy ${API}_6 { type ipv6_addr; }\ndelete set inet truss_policy ${API}_6\n`,
    );
  });
});

describe('an endpoint chain naming selectors', () => {
  it('creates the sets it names (no elements) before its rules, and refers to them per family', () => {
    const text = renderPolicy(P);
    const lines = text.split('\n');
    const decl = lines.indexOf(`add set inet truss_policy ${API}_4 { type ipv4_addr; }`);
    const firstRule = lines.findIndex((l) => l.includes(`@${API}_4`));
    assert.ok(decl >= 0 && decl < firstRule, text);
    assert.doesNotMatch(text, /flush set inet truss_policy sel_/);
    const rules = lines
      .filter((l) => l.startsWith('add rule') && l.includes('@sel_'))
      .map((l) => l.replace(/^add rule inet truss_policy ep_0123456789ab /, ''));
    const api = [
      `ip saddr @${API}_4 tcp dport { 5432, 8000-8100 } accept`,
      `ip saddr @${API}_4 udp dport 53 accept`,
      `ip6 saddr @${API}_6 tcp dport { 5432, 8000-8100 } accept`,
      `ip6 saddr @${API}_6 udp dport 53 accept`,
    ];
    const ops = [
      `ip saddr @${OPS}_4 tcp dport 9000 accept`,
      `ip saddr @${OPS}_4 icmp type echo-request accept`,
      `ip6 saddr @${OPS}_6 tcp dport 9000 accept`,
      `ip6 saddr @${OPS}_6 icmpv6 type echo-request accept`,
    ];
    assert.deepEqual(rules, API < OPS ? [...api, ...ops] : [...ops, ...api]);
    // a selector rule is no element of the endpoint's own sets (it must not admit any source)
    assert.match(text, /ep_0123456789ab_tcp \{ type inet_service; flags interval; elements = \{ 80 \} \}/);
    assert.doesNotMatch(text, /_tcp \{[^}]*5432/);
  });

  it('the drift check knows the rules: a converged listing reports nothing, sel_ sets are not policies', () => {
    const blocks = expectedPolicyBlocks(P);
    const listing = [
      'table inet truss_policy {',
      '\tmap policy4 {\n\t\ttype ipv4_addr : verdict\n\t\telements = { 198.18.40.3 : jump ep_0123456789ab }\n\t}',
      '\tmap policy6 {\n\t\ttype ipv6_addr : verdict\n\t}',
      `\tset ${API}_4 {\n\t\ttype ipv4_addr\n\t\telements = { 198.18.0.5 }\n\t}`,
      `\tset ${API}_6 {\n\t\ttype ipv6_addr\n\t}`,
      ...[...blocks].map(([k, lines]) => `\t${k} {\n${lines.map((l) => `\t\t${l}`).join('\n')}\n\t}`),
      `\tcounter ep_0123456789ab_denied {\n\t\tpackets 0 bytes 0\n\t}`,
      ...['forward', 'output'].map(
        (h) =>
          `\tchain ${h} {\n\t\ttype filter hook ${h} priority -20; policy accept;\n` +
          '\t\tct state established,related accept comment "truss: replies and flows already admitted"\n' +
          '\t\tip daddr vmap @policy4 comment "truss: to an endpoint with a policy: its chain"\n' +
          '\t\tip6 daddr vmap @policy6 comment "truss: to an endpoint with a policy: its chain"\n\t}',
      ),
      '}',
    ].join('\n');
    assert.deepEqual(diffPolicies([P], listing).problems, []);
    const sel = { ...S, addresses4: ['198.18.0.5'], addresses6: [] };
    assert.deepEqual(diffSelectors([sel], listing), { drifted: [], extra: [], problems: [] });
    // a member missing, one too many, an unwanted selector
    const d = diffSelectors(
      [{ ...sel, addresses4: ['198.18.0.5', '198.18.0.7'] }],
      listing.replace('198.18.0.5 }', '198.18.0.5, 198.18.0.9 }'),
    );
    assert.deepEqual(d.drifted, [API]);
    assert.deepEqual(d.problems, [
      `selector ${API} (name=api-*): set ${API}_4 lacks 198.18.0.7`,
      `selector ${API} (name=api-*): set ${API}_4 holds 198.18.0.9, not a member`,
    ]);
    assert.deepEqual(diffSelectors([], listing).extra, [API]);
    assert.deepEqual(diffSelectors([sel], undefined).drifted, [API]);
  });

  it('a rule with both a source and a peer is refused', () => {
    const bad = {
      ...P,
      rules: [{ proto: 'tcp', ports: { from: 1, to: 1 }, source: '198.18.0.0/16', peer: { by: 'name', glob: 'a' } }],
    } as PolicyObject;
    assert.throws(() => checkPolicyObject(bad), /a source or a peer, not both/);
    const glob = {
      ...P,
      rules: [{ proto: 'tcp', ports: { from: 1, to: 1 }, peer: { by: 'name', glob: 'a b' } }],
    } as PolicyObject;
    assert.throws(() => checkPolicyObject(glob), /invalid peer selector/);
  });

  it('conntrack: a flow a selector rule may admit is kept whatever its source (members are not known there)', () => {
    const flow = { family: 4, proto: 'tcp', src: '203.0.113.1', dst: '198.18.40.3', sport: 40000 } as const;
    assert.equal(flowAdmitted(P.rules, { ...flow, dport: 5432 }), true);
    assert.equal(flowAdmitted(P.rules, { ...flow, dport: 5433 }), false);
  });
});
