// A legacy RPC server (sofa-rpc-node) exporting one or more interfaces over
// Bolt or Dubbo, as an existing service would: no registry, a fixed port.
// Every method answers `<name>:<method>:<first argument>`, so a caller can tell
// which server (revision) answered.
//
//   node server.js <bolt|dubbo> <port> <name> <interface> [interface...]
'use strict';

const { RpcServer } = require('sofa-rpc-node').server;

const [protocol, port, name, ...interfaces] = process.argv.slice(2);
const quiet = { info() {}, warn() {}, debug() {}, error: console.error };

async function main() {
  const options = { port: Number(port), logger: quiet };
  if (protocol === 'dubbo') options.protocol = require('dubbo-remoting');
  const server = new RpcServer(options);
  for (const interfaceName of interfaces) {
    const answer = method => async arg => `${name}:${method}:${arg}`;
    server.addService({ interfaceName, version: '1.0.0', group: 'SOFA' }, {
      hello: answer('hello'),
      echo: answer('echo'),
      async fail(arg) {
        throw new Error(`${name} refuses ${arg}`);
      },
    });
  }
  await server.start();
  console.log(`ready ${protocol} ${server.publishPort}`);
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
