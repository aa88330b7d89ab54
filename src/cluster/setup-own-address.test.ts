import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterSettings } from './setup.ts';
import { describeEtcdTransport, ownAddressOf } from './setup.ts';

describe('cluster set-up: an etcd on one of this host’s own addresses', () => {
  const own = ownAddressOf([
    { addresses: ['127.0.0.1', '::1'] },
    { addresses: ['198.18.255.1', 'fd00:0:0::1', 'fe80::1'] },
  ]);

  it('knows the links’ addresses, in any spelling; a name or another address is not one', () => {
    for (const a of ['198.18.255.1', 'fd00::1', 'FD00:0::1']) assert.equal(own(a), true, a);
    for (const a of ['198.18.255.2', 'fd00::2', 'etcd.example', '']) assert.equal(own(a), false, a);
  });

  it('a plaintext etcd there is described as on this host, not as over the network', () => {
    const config = {} as ClusterSettings;
    assert.match(describeEtcdTransport(config, ['198.18.255.1:2379'], own).warning ?? '', /plaintext on this host/);
    assert.match(
      describeEtcdTransport(config, ['198.18.255.2:2379'], own).warning ?? '',
      /plaintext over the network \(--etcd-insecure\)/,
    );
  });
});
