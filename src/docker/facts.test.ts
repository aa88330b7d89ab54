/** Decoding GET /containers/{id}/json into the facts the follower keeps. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeContainerFacts } from './facts.ts';
import { hexId, inspectJson } from './fake-docker-testutil.ts';

const id = hexId('c1');
const net = { network: 'tnet', networkId: hexId('n1'), endpointId: hexId('e1') };

describe('decodeContainerFacts', () => {
  it('drops the own name and duplicates from Aliases + DNSNames (dockerd 28)', () => {
    const json = inspectJson(
      { id, name: 'web', running: true, attachments: [{ ...net, aliases: ['web', 'api'] }] },
      '28',
    );
    assert.deepEqual(decodeContainerFacts(json)?.endpoints[0]?.aliases, ['api', id.slice(0, 12)]);
  });

  it('is undefined for a container that is not running, and for a reply without an id', () => {
    assert.equal(
      decodeContainerFacts(inspectJson({ id, name: 'x', running: false, attachments: [net] }, '20.10')),
      undefined,
    );
    assert.equal(decodeContainerFacts({ State: { Running: true } }), undefined);
    assert.equal(decodeContainerFacts(null), undefined);
    assert.equal(decodeContainerFacts('nonsense'), undefined);
  });

  it('keeps a paused container, skips attachments without an endpoint and tolerates nulls', () => {
    const f = decodeContainerFacts({
      Id: id,
      Name: '/p',
      State: { Running: true, Paused: true },
      Config: { Labels: null },
      HostConfig: { Dns: null },
      NetworkSettings: {
        Networks: {
          none: { NetworkID: hexId('none'), EndpointID: '' },
          tnet: { NetworkID: net.networkId, EndpointID: net.endpointId, Aliases: null, IPAddress: 'not-an-ip' },
        },
      },
    });
    assert.deepEqual(f, {
      id,
      name: 'p',
      labels: {},
      dns: [],
      endpoints: [{ endpointId: net.endpointId, networkId: net.networkId, networkName: 'tnet', aliases: [] }],
    });
  });
});
