// A legacy RPC server (sofa-rpc-node) exporting one or more interfaces over
// Bolt or Dubbo, as an existing service would: no registry, a fixed port.
// Every method answers `<name>:<method>:<first argument>`, so a caller can tell
// which server (revision) answered.
//
//   PORT=<port> node server.js <bolt|dubbo> <name> <interface> [interface...]
//
// The port comes from $PORT (0: any free port), as weft gives a process
// function its port; the ready line also names $WEFT_SIDECAR.
'use strict';

const { RpcServer } = require('sofa-rpc-node').server;

const [protocol, name, ...interfaces] = process.argv.slice(2);
const port = process.env.PORT || 0;
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
  console.log(`ready ${protocol} sidecar=${process.env.WEFT_SIDECAR || '-'} ${server.publishPort}`);
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
