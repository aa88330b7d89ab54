import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isTrussError } from '../errors.ts';
import { bitsOf, type Family, formatPrefix, networkOf } from '../ip.ts';
import type { PeerSelector } from '../names/model.ts';
import { type IngressPolicy, type IngressRule, OPT_INGRESS } from './model.ts';
import { admits, formatIngress, formatRule, INGRESS_SYNTAX, MAX_INGRESS_RULES, parseIngress } from './parse.ts';

const K = OPT_INGRESS;

/** The message parseIngress throws for `text` (fails the test if it accepts it). */
function refusal(text: string): string {
  try {
    parseIngress(K, text);
  } catch (e) {
    assert.ok(isTrussError(e), `not a TrussError: ${String(e)}`);
    assert.equal(e.code, 'TRUSS_ERR_OPTION_INVALID');
    assert.equal(e.kind, 'invalid');
    return e.message;
  }
  assert.fail(`accepted ${JSON.stringify(text)}`);
}

describe('parseIngress: accepted', () => {
  const good: [string, IngressPolicy][] = [
    ['none', []],
    ['tcp/80', [{ proto: 'tcp', ports: { from: 80, to: 80 } }]],
    ['tcp/8000-8100', [{ proto: 'tcp', ports: { from: 8000, to: 8100 } }]],
    ['udp/53', [{ proto: 'udp', ports: { from: 53, to: 53 } }]],
    ['icmp', [{ proto: 'icmp' }]],
    ['tcp/1-65535', [{ proto: 'tcp', ports: { from: 1, to: 65535 } }]],
    ['tcp/5432@198.18.7.0/24', [{ proto: 'tcp', ports: { from: 5432, to: 5432 }, source: '198.18.7.0/24' }]],
    ['udp/53@fd00:7::/64', [{ proto: 'udp', ports: { from: 53, to: 53 }, source: 'fd00:7::/64' }]],
    ['icmp@198.18.0.0/16', [{ proto: 'icmp', source: '198.18.0.0/16' }]],
    ['tcp/22@198.18.0.9/32', [{ proto: 'tcp', ports: { from: 22, to: 22 }, source: '198.18.0.9/32' }]],
    ['tcp/22@fd00::9/128', [{ proto: 'tcp', ports: { from: 22, to: 22 }, source: 'fd00::9/128' }]],
    ['tcp/443@0.0.0.0/0', [{ proto: 'tcp', ports: { from: 443, to: 443 }, source: '0.0.0.0/0' }]],
    ['tcp/443@::/0', [{ proto: 'tcp', ports: { from: 443, to: 443 }, source: '::/0' }]],
    ['tcp/5432@name=api-*', [{ proto: 'tcp', ports: { from: 5432, to: 5432 }, peer: { by: 'name', glob: 'api-*' } }]],
    [
      'tcp/5432@label=role=api',
      [{ proto: 'tcp', ports: { from: 5432, to: 5432 }, peer: { by: 'label', key: 'role', value: 'api' } }],
    ],
    [
      'tcp/8000-8100@label=tier',
      [{ proto: 'tcp', ports: { from: 8000, to: 8100 }, peer: { by: 'label', key: 'tier' } }],
    ],
    ['icmp@name=web-?', [{ proto: 'icmp', peer: { by: 'name', glob: 'web-?' } }]],
    ['udp/53@name=dns', [{ proto: 'udp', ports: { from: 53, to: 53 }, peer: { by: 'name', glob: 'dns' } }]],
    // upper case, '_' and the label value's alphabet are the selector's, not the CIDR's
    ['tcp/80@name=Web_1.*', [{ proto: 'tcp', ports: { from: 80, to: 80 }, peer: { by: 'name', glob: 'Web_1.*' } }]],
    [
      'tcp/80@label=com.example/Tier=a:b+c/d',
      [{ proto: 'tcp', ports: { from: 80, to: 80 }, peer: { by: 'label', key: 'com.example/Tier', value: 'a:b+c/d' } }],
    ],
    [
      'tcp/80@label=role=',
      [{ proto: 'tcp', ports: { from: 80, to: 80 }, peer: { by: 'label', key: 'role', value: '' } }],
    ],
    [
      `tcp/65534-65535@label=${'k'.repeat(128)}=${'v'.repeat(256)}`,
      [
        {
          proto: 'tcp',
          ports: { from: 65534, to: 65535 },
          peer: { by: 'label', key: 'k'.repeat(128), value: 'v'.repeat(256) },
        },
      ],
    ],
    [
      'tcp/80,tcp/80@name=a,tcp/80@label=a,tcp/80@198.18.0.0/16',
      [
        { proto: 'tcp', ports: { from: 80, to: 80 } },
        { proto: 'tcp', ports: { from: 80, to: 80 }, peer: { by: 'name', glob: 'a' } },
        { proto: 'tcp', ports: { from: 80, to: 80 }, peer: { by: 'label', key: 'a' } },
        { proto: 'tcp', ports: { from: 80, to: 80 }, source: '198.18.0.0/16' },
      ],
    ],
    [
      'tcp/80,tcp/80-90,udp/80,icmp',
      [
        { proto: 'tcp', ports: { from: 80, to: 80 } },
        { proto: 'tcp', ports: { from: 80, to: 90 } },
        { proto: 'udp', ports: { from: 80, to: 80 } },
        { proto: 'icmp' },
      ],
    ],
  ];
  for (const [text, policy] of good) {
    it(`${text} parses and prints back to itself`, () => {
      assert.deepStrictEqual(parseIngress(K, text), policy);
      assert.equal(formatIngress(policy), text);
    });
  }
});

describe('parseIngress: refused', () => {
  it('names the key and the token, and says what is expected', () => {
    assert.equal(refusal('tcp/0'), 'option truss.ingress: "tcp/0" is not a valid rule: port must be 1-65535');
    assert.equal(
      refusal('tcp/80,tcp/65536'),
      'option truss.ingress: "tcp/65536" is not a valid rule: port must be 1-65535',
    );
    assert.equal(
      refusal('tcp/80,sctp/9'),
      `option truss.ingress: "sctp/9" is not a valid rule: unknown protocol "sctp" (tcp, udp or icmp); ${INGRESS_SYNTAX}`,
    );
    assert.equal(
      refusal('tcp/80-80'),
      'option truss.ingress: "tcp/80-80" is not a valid rule: a port range needs from < to (for one port write tcp/80)',
    );
    assert.equal(
      refusal('tcp/80@198.18.7.1/24'),
      'option truss.ingress: "tcp/80@198.18.7.1/24" is not a valid rule: source "198.18.7.1/24" has host bits set (did you mean 198.18.7.0/24?)',
    );
    assert.equal(
      refusal('tcp/80@198.18.7.1'),
      'option truss.ingress: "tcp/80@198.18.7.1" is not a valid rule: source "198.18.7.1" must be a network prefix (for one host write 198.18.7.1/32)',
    );
    assert.equal(
      refusal('udp/53@fd00:0007::/64'),
      'option truss.ingress: "udp/53@fd00:0007::/64" is not a valid rule: source "fd00:0007::/64" is not in canonical form (write fd00:7::/64)',
    );
    assert.equal(
      refusal('tcp/80,'),
      `option truss.ingress: "" is not a valid rule: empty entry (a stray or trailing comma?); ${INGRESS_SYNTAX}`,
    );
    assert.equal(refusal('udp/53,udp/53'), 'option truss.ingress: "udp/53" is not a valid rule: duplicate rule');
    assert.equal(
      refusal('tcp/80\nflush ruleset'),
      `option truss.ingress: "tcp/80\\nflush ruleset" is not a valid rule: character "\\n" is not allowed; ${INGRESS_SYNTAX}`,
    );
    assert.equal(refusal(''), `option truss.ingress: empty value; use "none" for nothing inbound (${INGRESS_SYNTAX})`);
  });

  it('uses the key it is given', () => {
    assert.throws(() => parseIngress('--ingress', 'tcp/0'), {
      name: 'TrussError',
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /^option --ingress: "tcp\/0"/,
    });
  });

  const bad: [string, RegExp][] = [
    ['tcp/80;rm -rf /', /"tcp\/80;rm -rf \/".*character ";"/],
    ['$(id)', /character "\$"/],
    ['`id`', /character "`"/],
    ['tcp/80\nflush ruleset', /character "\\n"/],
    ['} table x {', /character "}"/],
    ['tcp/80 @1.2.3.4/32', /character " "/],
    ['tcp/80, udp/53', /" udp\/53".*character " "/],
    [' tcp/80', /character " "/],
    ['tcp/80\t', /character "\\t"/],
    ['tcp/80\0', /character "\\u0000"/],
    ["tcp/'80'", /character "'"/],
    ['tcp/"80"', /character "\\""/],
    ['tcp/80#', /character "#"/],
    ['TCP/80', /must be lower case/],
    ['Tcp/80', /must be lower case/],
    ['tcp/80@FD00::/64', /must be lower case/],
    ['tcp/080', /port "080" must be a decimal number/],
    ['tcp/00', /port "00" must be a decimal number/],
    ['tcp/0', /port must be 1-65535/],
    ['tcp/65536', /port must be 1-65535/],
    ['tcp/99999999999999999999', /port must be 1-65535/],
    ['tcp/80-80', /from < to/],
    ['tcp/90-80', /from < to/],
    ['tcp/80-', /missing port/],
    ['tcp/-80', /missing port/],
    ['tcp/1-2-3', /from-to/],
    ['tcp/+80', /character "\+"/],
    ['tcp/80e0', /port "80e0" must be a decimal number/],
    ['tcp/0x50', /port "0x50" must be a decimal number/],
    ['udp/1.5', /port "1.5" must be a decimal number/],
    ['tcp/', /missing port/],
    ['tcp', /tcp needs a port/],
    ['udp@198.18.0.0/16', /udp needs a port/],
    ['icmp/8', /icmp takes no port/],
    ['icmp6', /unknown protocol "icmp6"/],
    ['sctp/80', /unknown protocol "sctp"/],
    ['any', /unknown protocol "any"/],
    ['80', /unknown protocol "80"/],
    ['tcp/80@', /source "" is not an IPv4 or IPv6 network prefix/],
    ['tcp/80@198.18.7.1/24', /host bits set \(did you mean 198\.18\.7\.0\/24\?\)/],
    ['tcp/80@198.18.7.0/33', /not an IPv4 or IPv6 network prefix/],
    ['tcp/80@198.18.7.0/024', /not an IPv4 or IPv6 network prefix/],
    ['tcp/80@010.0.0.0/8', /not an IPv4 or IPv6 network prefix/],
    ['tcp/80@198.18.7.0/24@198.18.8.0/24', /not an IPv4 or IPv6 network prefix/],
    ['tcp/80@fe80::1%eth0/64', /character "%"/],
    ['tcp/80@::ffff:1.2.3.0/120', /not an IPv4 or IPv6 network prefix/],
    ['tcp/80@fd00:0::/64', /not in canonical form \(write fd00::\/64\)/],
    ['tcp/80@fd00:0:0:0:0:0:0:0/64', /not in canonical form \(write fd00::\/64\)/],
    ['tcp/80@fd00::1/64', /host bits set \(did you mean fd00::\/64\?\)/],
    ['tcp/80@1.2.3.4', /for one host write 1\.2\.3\.4\/32/],
    ['tcp/80@fd00::1', /for one host write fd00::1\/128/],
    ['１/80', /character "１"/],
    ['tcp/８0', /character "８"/],
    ['tcp/٨٠', /character "٨"/],
    ['tcp/80\u200b', /character "\u200b"/],
    [',', /"" is not a valid rule: empty entry/],
    [',tcp/80', /empty entry/],
    ['tcp/80,,udp/53', /empty entry/],
    ['tcp/80,none', /"none" is not a valid rule: none stands alone/],
    ['none,none', /none stands alone/],
    ['None', /must be lower case/],
    ['icmp,icmp', /"icmp" is not a valid rule: duplicate rule/],
    ['tcp/80@198.18.0.0/16,tcp/80@198.18.0.0/16', /duplicate rule/],
    [`tcp/80@${'1'.repeat(500)}`, /too long/],
    // sources by container
    ['tcp/80@name=', /name= needs a container name or glob \(name=api-\*\)/],
    ['tcp/80@name=api web', /name "api web" may hold only/],
    ['tcp/80@name=api/1', /name "api\/1" may hold only letters, digits, '_', '\.', '-' and the globs '\*' '\?'/],
    ['tcp/80@name=a@b', /name "a@b" may hold only/],
    ['tcp/80@name=a=b', /name "a=b" may hold only/],
    [`tcp/80@name=${'a'.repeat(129)}`, /is longer than 128 characters/],
    ['tcp/80@label=', /label= needs a key \(label=role or label=role=api\)/],
    ['tcp/80@label==api', /label= needs a key/],
    ['tcp/80@label=-role', /label key "-role" must start with a letter or digit/],
    ['tcp/80@label=role=a=b', /label value "a=b" may hold only .*no ',', '=', '@' or spaces/],
    ['tcp/80@label=role=a b', /label value "a b" may hold only/],
    [`tcp/80@label=${'k'.repeat(129)}`, /label key .* \(at most 128\)/],
    [`tcp/80@label=k=${'v'.repeat(257)}`, /label value .*at most 256/],
    ['tcp/80@name', /source "name": write name=<container name or glob> or label=<key>\[=<value>\]/],
    ['tcp/80@label:role', /source "label:role": write name=/],
    ['tcp/80@Name=api', /must be lower case/],
    ['TCP/80@name=api', /must be lower case/],
    ['tcp/0@name=api', /port must be 1-65535/],
    ['tcp@name=api', /tcp needs a port/],
    ['icmp/8@name=api', /icmp takes no port/],
    ['sctp/80@name=api', /unknown protocol "sctp"/],
    ['tcp/80@198.18.0.0/16@name=api', /character "="/],
    ['tcp/80@name=api,tcp/80@name=api', /"tcp\/80@name=api" is not a valid rule: duplicate rule/],
    [`tcp/65534-65535@label=${'k'.repeat(128)}=${'v'.repeat(257)}`, /too long/],
  ];
  for (const [text, why] of bad) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      const msg = refusal(text);
      assert.match(msg, /^option truss\.ingress: /);
      assert.match(msg, why);
    });
  }

  it('cuts long tokens short in messages', () => {
    const msg = refusal(`tcp/80@${'9'.repeat(10_000)}`);
    assert.ok(msg.length < 300, msg);
  });

  it(`accepts ${MAX_INGRESS_RULES} rules and refuses one more`, () => {
    const ports = Array.from({ length: 65_535 }, (_, i) => `tcp/${i + 1}`);
    const max = [...ports, 'icmp'].join(',');
    assert.equal(parseIngress(K, max).length, MAX_INGRESS_RULES);
    assert.match(refusal(`${max},udp/1`), /too many rules \(at most 65536\)/);
    assert.match(refusal(','.repeat(1_000_000)), /too many rules/);
  });

  it('parses a 10,000-rule policy in linear time (a guard against quadratic work, not a benchmark)', () => {
    // worst case: every rule has its own source, half of them IPv6 (sources that repeat are parsed once)
    const text = Array.from({ length: 10_000 }, (_, i) =>
      i % 2 === 0 ? `tcp/${i + 1}@198.18.${i % 256}.0/24` : `udp/${i + 1}-${i + 2}@fd00:${i.toString(16)}::/64`,
    ).join(',');
    assert.equal(parseIngress(K, text).length, 10_000); // warm up
    let best = Number.POSITIVE_INFINITY;
    for (let run = 0; run < 5; run++) {
      const t0 = performance.now();
      parseIngress(K, text);
      best = Math.min(best, performance.now() - t0);
    }
    // ~30-45 ms on a quiet 2-core machine; the bound only has to catch quadratic behaviour
    // (seconds), not the noise of a loaded CI machine running tests in parallel
    assert.ok(best < 1000, `${best.toFixed(1)} ms`);
  });
});

// ---------- property tests ----------

const arbPrefix = (family: Family): fc.Arbitrary<string> =>
  fc
    .record({
      value: fc.bigInt({ min: 0n, max: (1n << BigInt(bitsOf(family))) - 1n }),
      length: fc.integer({ min: 0, max: bitsOf(family) }),
    })
    .map(({ value, length }) => formatPrefix(networkOf({ family, value, length })));

const arbSource = fc.option(fc.oneof(arbPrefix(4), arbPrefix(6)), { nil: undefined });

const arbWord = fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,6}$/);
const arbPeer: fc.Arbitrary<PeerSelector> = fc.oneof(
  fc.stringMatching(/^[a-zA-Z0-9_.*?-]{1,8}$/).map((glob): PeerSelector => ({ by: 'name', glob })),
  arbWord.map((key): PeerSelector => ({ by: 'label', key })),
  fc
    .record({ key: arbWord, value: fc.stringMatching(/^[a-zA-Z0-9_./:+-]{0,6}$/) })
    .map(({ key, value }): PeerSelector => ({ by: 'label', key, value })),
);
/** either a CIDR or a container selector (never both), or neither */
const arbFrom = fc.oneof(
  arbSource.map((source) => (source === undefined ? {} : { source })),
  arbPeer.map((peer) => ({ peer })),
);

const arbRule: fc.Arbitrary<IngressRule> = fc.oneof(
  fc
    .record({
      proto: fc.constantFrom('tcp' as const, 'udp' as const),
      a: fc.integer({ min: 1, max: 65_535 }),
      b: fc.integer({ min: 1, max: 65_535 }),
      from: arbFrom,
    })
    .map(
      ({ proto, a, b, from }): IngressRule => ({ proto, ports: { from: Math.min(a, b), to: Math.max(a, b) }, ...from }),
    ),
  arbFrom.map((from): IngressRule => ({ proto: 'icmp', ...from })),
);

const arbPolicy: fc.Arbitrary<IngressPolicy> = fc.uniqueArray(arbRule, { maxLength: 20, selector: formatRule });

/** Texts near the language: fragments of valid and almost-valid rules glued together. */
const arbNearText: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      arbRule.map(formatRule),
      fc
        .array(
          fc.constantFrom(
            'tcp',
            'udp',
            'icmp',
            'none',
            '/',
            '-',
            '@',
            ',',
            ' ',
            '0',
            '00',
            '80',
            '080',
            '65535',
            '65536',
            '1.2.3.0/24',
            '1.2.3.4/24',
            '1.2.3.4',
            'fd00::/64',
            'FD00::/64',
            'fd00:0::/64',
            'fd00:0:0:0:0:0:0:0/64',
            '::/0',
            '0.0.0.0/0',
            'name=',
            'label=',
            'api-*',
            'Web?',
            'role=api',
            '=',
            'a b',
          ),
          { maxLength: 8 },
        )
        .map((parts) => parts.join('')),
    ),
    { minLength: 1, maxLength: 6 },
  )
  .map((tokens) => tokens.join(','));

describe('parseIngress: properties', () => {
  it('format → parse round-trips every valid policy', () => {
    fc.assert(
      fc.property(arbPolicy, (p) => {
        assert.deepStrictEqual(parseIngress(K, formatIngress(p)), p);
      }),
      { numRuns: 500 },
    );
  });

  it('every accepted text prints back to itself; everything else is a badOption naming the key', () => {
    const check = (text: string): void => {
      let p: IngressPolicy;
      try {
        p = parseIngress(K, text);
      } catch (e) {
        assert.ok(isTrussError(e) && e.code === 'TRUSS_ERR_OPTION_INVALID', String(e));
        assert.ok(e.message.startsWith(`option ${K}: `), e.message);
        return;
      }
      assert.equal(formatIngress(p), text);
    };
    fc.assert(fc.property(arbNearText, check), { numRuns: 2000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), check), { numRuns: 1000 });
  });
});

describe('admits', () => {
  const p = parseIngress(K, 'tcp/80,tcp/8000-8100@198.18.7.0/24,udp/53@fd00:7::/64,icmp@198.18.0.0/16');
  const cases: [Parameters<typeof admits>[1], boolean][] = [
    [{ proto: 'tcp', port: 80, source: '203.0.113.9' }, true],
    [{ proto: 'tcp', port: 80, source: '2001:db8::1' }, true],
    [{ proto: 'tcp', port: 81, source: '198.18.7.1' }, false],
    [{ proto: 'tcp', port: 8000, source: '198.18.7.1' }, true],
    [{ proto: 'tcp', port: 8100, source: '198.18.7.255' }, true],
    [{ proto: 'tcp', port: 8101, source: '198.18.7.1' }, false],
    [{ proto: 'tcp', port: 8050, source: '198.18.8.1' }, false],
    [{ proto: 'udp', port: 80, source: '198.18.7.1' }, false],
    [{ proto: 'udp', port: 53, source: 'fd00:7::99' }, true],
    [{ proto: 'udp', port: 53, source: 'fd00:8::99' }, false],
    [{ proto: 'udp', port: 53, source: '198.18.7.1' }, false],
    [{ proto: 'icmp', source: '198.18.200.1' }, true],
    [{ proto: 'icmp', source: '198.19.0.1' }, false],
    [{ proto: 'tcp', source: '198.18.7.1' }, false],
    [{ proto: 'tcp', port: 80, source: 'not-an-ip' }, false],
    [{ proto: 'tcp', port: 80, source: '198.18.7.0/24' }, false],
  ];
  for (const [flow, expected] of cases) {
    it(`${expected ? 'admits' : 'refuses'} ${JSON.stringify(flow)}`, () => {
      assert.equal(admits(p, flow), expected);
    });
  }

  it('none admits nothing; an any-source rule admits every source', () => {
    assert.equal(admits([], { proto: 'icmp', source: '198.18.0.1' }), false);
    assert.equal(admits(parseIngress(K, 'icmp'), { proto: 'icmp', source: '::1' }), true);
  });

  it('admits a name= or label= rule only for a flow whose container the selector selects', () => {
    const q = parseIngress(K, 'tcp/5432@name=api-*,udp/53@label=role=dns,icmp@label=tier');
    const api = { name: 'api-1', labels: {} };
    const dns = { name: 'resolver', labels: { role: 'dns' } };
    const tiered = { name: 'x', labels: { tier: '' } };
    assert.equal(admits(q, { proto: 'tcp', port: 5432, source: '198.18.0.5', peer: api }), true);
    assert.equal(admits(q, { proto: 'tcp', port: 5433, source: '198.18.0.5', peer: api }), false);
    assert.equal(admits(q, { proto: 'tcp', port: 5432, source: '198.18.0.5', peer: dns }), false);
    assert.equal(admits(q, { proto: 'udp', port: 53, source: 'fd00::5', peer: dns }), true);
    assert.equal(admits(q, { proto: 'icmp', source: '198.18.0.5', peer: tiered }), true);
    assert.equal(admits(q, { proto: 'icmp', source: '198.18.0.5', peer: api }), false);
    // fails closed: a source whose container is unknown matches no selector
    assert.equal(admits(q, { proto: 'tcp', port: 5432, source: '198.18.0.5' }), false);
  });

  it('agrees with a brute-force reading of the rules', () => {
    const arbFlow = fc.record({
      proto: fc.constantFrom('tcp' as const, 'udp' as const, 'icmp' as const),
      port: fc.integer({ min: 1, max: 65_535 }),
      source: fc.oneof(
        fc.ipV4(),
        arbPrefix(6).map((s) => s.split('/')[0] as string),
      ),
    });
    const inPrefix = (ip: string, cidr: string): boolean => {
      const [net, len] = cidr.split('/') as [string, string];
      if (net.includes(':') !== ip.includes(':')) return false;
      const toBits = (s: string): string =>
        s.includes(':')
          ? (() => {
              const [h, t = ''] = s.split('::') as [string, string?];
              const hs = h ? h.split(':') : [];
              const ts = s.includes('::') ? (t ? t.split(':') : []) : [];
              const all = s.includes('::') ? [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts] : hs;
              return all.map((g) => Number.parseInt(g, 16).toString(2).padStart(16, '0')).join('');
            })()
          : s
              .split('.')
              .map((o) => Number(o).toString(2).padStart(8, '0'))
              .join('');
      return toBits(ip).slice(0, Number(len)) === toBits(net).slice(0, Number(len));
    };
    fc.assert(
      fc.property(arbPolicy, arbFlow, (pol, flow) => {
        const f = flow.proto === 'icmp' ? { proto: flow.proto, source: flow.source } : flow;
        const expected = pol.some(
          (r) =>
            r.proto === f.proto &&
            (r.ports === undefined || (flow.port >= r.ports.from && flow.port <= r.ports.to)) &&
            r.peer === undefined &&
            (r.source === undefined || inPrefix(f.source, r.source)),
        );
        assert.equal(admits(pol, f), expected);
      }),
      { numRuns: 1000 },
    );
  });
});
