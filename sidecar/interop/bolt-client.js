// Calls an interface over Bolt with sofa-rpc-node's own client, at a direct
// address (the sidecar's), `n` times; prints one JSON line: how many answers
// came from each server name, and the errors.
//
//   node bolt-client.js <host:port> <interface> <n> [v1|v2crc] [method]
//
// With WEFT_DNS=<ip:port> the host is first resolved by that DNS server (weft's
// interface-name responder), as a legacy client configured with a service's
// DNS name would.
'use strict';

const { RpcClient } = require('sofa-rpc-node').client;
const protocol = require('sofa-bolt-node');

const [serverHost, interfaceName, n, frames = 'v1', method = 'hello'] = process.argv.slice(2);
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

async function resolve(hostPort) {
  if (!process.env.WEFT_DNS) return hostPort;
  const at = hostPort.lastIndexOf(':');
  const resolver = new (require('dns').promises.Resolver)();
  resolver.setServers([process.env.WEFT_DNS]);
  const [ip] = await resolver.resolve4(hostPort.slice(0, at));
  return ip + hostPort.slice(at);
}

async function main() {
  const address = await resolve(serverHost);
  const connectionOpts = { protocol };
  if (frames === 'v2crc') {
    // Bolt v2 with a CRC32 over every frame (sofa-bolt-node's encoder options).
    connectionOpts.protocol = Object.assign({}, protocol, {
      encoder(opts) {
        const enc = protocol.encoder(opts);
        enc.protocolType = 'bolt2';
        enc.boltVersion = 2;
        enc.crcEnable = true;
        return enc;
      },
    });
  }
  const client = new RpcClient({ logger: quiet, connectionOpts });
  const consumer = client.createConsumer({ interfaceName, version: '1.0.0', group: 'SOFA', serverHost: address });
  await consumer.ready();
  const counts = {};
  const errors = [];
  for (let i = 0; i < Number(n); i++) {
    try {
      const args = [{ $class: 'java.lang.String', $: `x${i}` }];
      const got = await consumer.invoke(method, args, { responseTimeout: 5000 });
      const who = String(got).split(':')[0];
      counts[who] = (counts[who] || 0) + 1;
    } catch (e) {
      errors.push(e.message);
    }
  }
  console.log(JSON.stringify({ address, counts, errors }));
  await client.close();
}

main().then(() => process.exit(0), e => {
  console.error(e);
  process.exit(1);
});
