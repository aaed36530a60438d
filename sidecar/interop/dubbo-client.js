// Calls an interface over Dubbo 2 at a direct address (the sidecar's) `n`
// times, with dubbo2.js (`DirectlyDubbo`) or sofa-rpc-node's client with
// dubbo-remoting; prints one JSON line: answers per server name, and errors.
//
//   node dubbo-client.js <host:port> <interface> <n> [dubbo2js|sofa] [method]
//
// With WEFT_DNS=<ip:port> the host is first resolved by that DNS server (weft's
// interface-name responder), as a legacy client configured with a service's
// DNS name would.
'use strict';

const [hostPort, dubboInterface, n, client = 'dubbo2js', method = 'hello'] = process.argv.slice(2);
let address = hostPort;

async function resolve() {
  if (!process.env.WEFT_DNS) return;
  const at = hostPort.lastIndexOf(':');
  const resolver = new (require('dns').promises.Resolver)();
  resolver.setServers([process.env.WEFT_DNS]);
  const [ip] = await resolver.resolve4(hostPort.slice(0, at));
  address = ip + hostPort.slice(at);
}

async function viaDubbo2js(call) {
  const { DirectlyDubbo, java } = require('dubbo2.js');
  const dubbo = DirectlyDubbo.from({ dubboAddress: address, dubboVersion: '2.0.2', dubboInvokeTimeout: 5 });
  const service = dubbo.proxyService({
    dubboInterface,
    version: '1.0.0',
    methods: { [method]: arg => [java.String(arg)] },
  });
  await call(async arg => {
    const { res, err } = await service[method](arg);
    if (err) throw err;
    return res;
  });
  dubbo.close && dubbo.close();
}

async function viaSofa(call) {
  const { RpcClient } = require('sofa-rpc-node').client;
  const quiet = { info() {}, warn() {}, debug() {}, error() {} };
  const rpc = new RpcClient({ logger: quiet, protocol: require('dubbo-remoting') });
  const consumer = rpc.createConsumer({ interfaceName: dubboInterface, version: '1.0.0', serverHost: address });
  await consumer.ready();
  await call(arg => consumer.invoke(method, [{ $class: 'java.lang.String', $: arg }], { responseTimeout: 5000 }));
  await rpc.close();
}

async function main() {
  await resolve();
  const counts = {};
  const errors = [];
  const call = async invoke => {
    for (let i = 0; i < Number(n); i++) {
      try {
        const who = String(await invoke(`x${i}`)).split(':')[0];
        counts[who] = (counts[who] || 0) + 1;
      } catch (e) {
        errors.push(e.message);
      }
    }
  };
  await (client === 'sofa' ? viaSofa(call) : viaDubbo2js(call));
  console.log(JSON.stringify({ address, counts, errors }));
}

main().then(() => process.exit(0), e => {
  console.error(e);
  process.exit(1);
});
