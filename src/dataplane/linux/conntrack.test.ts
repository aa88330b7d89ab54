import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IngressPolicy } from '../../core/policy/model.ts';
import { deleteArgs, flowAdmitted, parseConntrack, type TrackedFlow } from './conntrack.ts';
import { normaliseKernelError } from './exec.ts';

// conntrack v1.4.7 on kernel 6.18, `conntrack -L -f ipv4|ipv6` (and one `-o extended` line)
const LIST = `icmp     1 28 src=198.18.99.1 dst=198.18.99.2 type=8 code=0 id=28547 src=198.18.99.2 dst=198.18.99.1 type=0 code=0 id=28547 mark=0 use=1
tcp      6 431998 ESTABLISHED src=198.18.99.1 dst=198.18.99.2 sport=34858 dport=8080 src=198.18.99.2 dst=198.18.99.1 sport=8080 dport=34858 [ASSURED] mark=0 use=1
udp      17 29 src=198.18.99.1 dst=198.18.99.2 sport=40000 dport=53 [UNREPLIED] src=198.18.99.2 dst=198.18.99.1 sport=53 dport=40000 mark=0 use=1
tcp      6 431999 ESTABLISHED src=fd00:99::1 dst=fd00:99::2 sport=55648 dport=8080 src=fd00:99::2 dst=fd00:99::1 sport=8080 dport=55648 [ASSURED] mark=0 use=1
icmpv6   58 29 src=fd00:99::1 dst=fd00:99::2 type=128 code=0 id=28548 src=fd00:99::2 dst=fd00:99::1 type=129 code=0 id=28548 mark=0 use=1
ipv4     2 tcp      6 431998 ESTABLISHED src=198.18.99.1 dst=198.18.99.2 sport=34859 dport=80 src=198.18.99.2 dst=198.18.99.1 sport=80 dport=34859 [ASSURED] mark=0 use=1
gre      47 179 src=198.18.99.1 dst=198.18.99.2 srckey=0x0 dstkey=0x0 src=198.18.99.2 dst=198.18.99.1 srckey=0x0 dstkey=0x0 mark=0 use=1
tcp      6 10 SYN_SENT src=198.18.99.1 dst=198.18.99.2 sport=99999 dport=80 [UNREPLIED] src=198.18.99.2 dst=198.18.99.1 sport=80 dport=99999 mark=0 use=1
`;

const flows = parseConntrack(LIST);
const [icmp, tcp4, udp4, tcp6, icmp6, ext] = flows as [
  TrackedFlow,
  TrackedFlow,
  TrackedFlow,
  TrackedFlow,
  TrackedFlow,
  TrackedFlow,
];

describe('parseConntrack', () => {
  it('reads the original tuple of tcp, udp, icmp and icmpv6 entries; skips other protocols and junk', () => {
    assert.equal(flows.length, 6);
    assert.deepEqual(tcp4, {
      family: 4,
      proto: 'tcp',
      src: '198.18.99.1',
      dst: '198.18.99.2',
      sport: 34858,
      dport: 8080,
    });
    assert.deepEqual(icmp, {
      family: 4,
      proto: 'icmp',
      src: '198.18.99.1',
      dst: '198.18.99.2',
      type: 8,
      code: 0,
      id: 28547,
    });
    assert.deepEqual(udp4.dport, 53);
    assert.deepEqual([tcp6.family, tcp6.src, tcp6.dport], [6, 'fd00:99::1', 8080]);
    assert.deepEqual([icmp6.proto, icmp6.type], ['icmpv6', 128]);
    assert.deepEqual([ext.proto, ext.dport], ['tcp', 80]);
  });

  it('returns nothing for empty output', () => assert.deepEqual(parseConntrack(''), []));
});

describe('flowAdmitted', () => {
  const only80: IngressPolicy = [{ proto: 'tcp', ports: { from: 80, to: 80 } }];
  it('admits by protocol, port and source', () => {
    assert.equal(flowAdmitted(only80, ext), true);
    assert.equal(flowAdmitted(only80, tcp4), false);
    assert.equal(
      flowAdmitted([{ proto: 'tcp', ports: { from: 8000, to: 8100 }, source: '198.18.99.0/24' }], tcp4),
      true,
    );
    assert.equal(
      flowAdmitted([{ proto: 'tcp', ports: { from: 8080, to: 8080 }, source: '198.18.98.0/24' }], tcp4),
      false,
    );
    assert.equal(flowAdmitted([{ proto: 'udp', ports: { from: 53, to: 53 } }], udp4), true);
    assert.equal(flowAdmitted([{ proto: 'tcp', ports: { from: 53, to: 53 } }], udp4), false);
    assert.equal(flowAdmitted([{ proto: 'tcp', ports: { from: 8080, to: 8080 }, source: 'fd00:99::/64' }], tcp6), true);
  });

  it('icmp rules admit echo requests only, from their source', () => {
    assert.equal(flowAdmitted([{ proto: 'icmp' }], icmp), true);
    assert.equal(flowAdmitted([{ proto: 'icmp' }], icmp6), true);
    assert.equal(flowAdmitted([{ proto: 'icmp', source: '198.18.0.0/16' }], icmp6), false);
    assert.equal(flowAdmitted([{ proto: 'icmp' }], { ...icmp, type: 13 }), false);
    assert.equal(flowAdmitted(only80, icmp), false);
  });

  it('`none` admits nothing', () => {
    for (const f of flows) assert.equal(flowAdmitted([], f), false);
  });
});

describe('deleteArgs', () => {
  it('names the exact original tuple', () => {
    assert.deepEqual(deleteArgs(tcp4), [
      '-D',
      '-f',
      'ipv4',
      '-p',
      'tcp',
      '-s',
      '198.18.99.1',
      '-d',
      '198.18.99.2',
      '--sport',
      '34858',
      '--dport',
      '8080',
    ]);
    assert.deepEqual(deleteArgs(icmp6).slice(2), [
      'ipv6',
      '-p',
      'icmpv6',
      '-s',
      'fd00:99::1',
      '-d',
      'fd00:99::2',
      '--icmpv6-type',
      '128',
      '--icmpv6-code',
      '0',
      '--icmpv6-id',
      '28548',
    ]);
  });

  it('an entry already gone is ENOENT (conntrack -D exits 1 with only this line)', () => {
    assert.equal(
      normaliseKernelError('conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n'),
      'ENOENT',
    );
    assert.equal(
      normaliseKernelError('conntrack v1.4.7 (conntrack-tools): 10 flow entries have been deleted.\n'),
      'OTHER',
    );
  });
});
