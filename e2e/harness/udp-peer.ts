/**
 * One UDP socket in a test namespace, driven by the suite (udp.ts runs it under nsenter):
 * `node udp-peer.ts BIND_IP:PORT reflect|quiet LABEL`. It prints `{"ready":"ip:port"}` once
 * bound, then one JSON line per datagram it receives (`{"from":"ip:port","data":"..."}`), and
 * sends what stdin asks (`{"to":"ip:port","data":"..."}` per line). In reflect mode it answers
 * every datagram with `seen <source ip:port>`, as a STUN server tells a client its reflexive
 * address; `seen ...` itself is never answered, so two reflectors cannot loop. It exits when
 * stdin closes: a suite that dies takes it along. LABEL (a path under the e2e work dir) only
 * marks the command line, so the leak check finds a survivor.
 */
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';

const [bind = '', mode = 'quiet'] = process.argv.slice(2);
const at = bind.lastIndexOf(':');
if (at < 1) throw new Error('usage: udp-peer.ts BIND_IP:PORT reflect|quiet LABEL');
const sock = dgram.createSocket('udp4');
const out = (o: unknown): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

sock.on('message', (msg, rinfo) => {
  const from = `${rinfo.address}:${rinfo.port}`;
  const data = msg.toString('utf8');
  out({ from, data });
  if (mode === 'reflect' && !data.startsWith('seen ')) sock.send(`seen ${from}`, rinfo.port, rinfo.address);
});
sock.on('error', (err) => {
  out({ error: err.message });
  process.exit(1);
});
sock.bind(Number(bind.slice(at + 1)), bind.slice(0, at), () => {
  const a = sock.address();
  out({ ready: `${a.address}:${a.port}` });
});

createInterface({ input: process.stdin }).on('line', (line) => {
  const { to, data } = JSON.parse(line) as { to: string; data: string };
  const i = to.lastIndexOf(':');
  // why a callback: a send to an unreachable address must not throw out of the process
  sock.send(data, Number(to.slice(i + 1)), to.slice(0, i), (err) => {
    if (err) out({ sendError: err.message, to });
  });
});
process.stdin.on('end', () => process.exit(0));
