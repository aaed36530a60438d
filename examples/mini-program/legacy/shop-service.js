// The shop's existing inventory and pricing service: a plain sofa-rpc-node
// server speaking Dubbo 2 (dubbo-remoting), exporting two interfaces from one
// process. It knows nothing of weft: weft runs it as a `process` Function on
// $PORT and callers reach each interface by name through the sidecar.
//
//   PORT=<port> node shop-service.js
'use strict';

const { RpcServer } = require('sofa-rpc-node').server;

const CATALOG = {
  tea: { name: 'Jasmine tea', price: 450 },
  bun: { name: 'Pork bun', price: 300 },
  noodles: { name: 'Dan dan noodles', price: 1200 },
  mango: { name: 'Mango pudding', price: 650 },
};
const stock = { tea: 100000, bun: 100000, noodles: 100000, mango: 40 };
const reservations = new Map(); // order id -> items, so a retried reserve is not counted twice

class OutOfStock extends Error {}

const inventory = {
  // stock(sku) -> units left
  async stock(sku) {
    return stock[sku] ?? 0;
  },
  // reserve(orderId, [{sku, qty}]) -> {orderId, reserved, remaining}; all or nothing
  async reserve(orderId, items) {
    if (reservations.has(orderId)) return { orderId, reserved: true, repeated: true };
    for (const { sku, qty } of items) {
      if (!(sku in stock)) throw new Error(`unknown sku ${sku}`);
      if (stock[sku] < qty) throw new OutOfStock(`out of stock: ${sku} (${stock[sku]} left)`);
    }
    const remaining = {};
    for (const { sku, qty } of items) remaining[sku] = stock[sku] -= qty;
    reservations.set(orderId, items);
    return { orderId, reserved: true, remaining };
  },
};

const pricing = {
  // catalog() -> [{sku, name, price}]
  async catalog() {
    return Object.entries(CATALOG).map(([sku, { name, price }]) => ({ sku, name, price, stock: stock[sku] }));
  },
  // quote([{sku, qty}], promo) -> {lines, total} in cents
  async quote(items, promo) {
    const lines = items.map(({ sku, qty }) => {
      const item = CATALOG[sku];
      if (!item) throw new Error(`unknown sku ${sku}`);
      return { sku, name: item.name, qty, unit: item.price, amount: item.price * qty };
    });
    const subtotal = lines.reduce((s, l) => s + l.amount, 0);
    const discount = promo === 'FREESHIP' ? 0 : Math.round(subtotal * (Number(promo) || 0) / 100);
    return { lines, subtotal, discount, total: subtotal - discount };
  },
};

async function main() {
  const quiet = { info() {}, warn() {}, debug() {}, error: console.error };
  const server = new RpcServer({ port: Number(process.env.PORT || 0), logger: quiet, protocol: require('dubbo-remoting') });
  server.addService({ interfaceName: 'com.example.shop.InventoryService', version: '1.0.0', group: 'SOFA' }, inventory);
  server.addService({ interfaceName: 'com.example.shop.PriceService', version: '1.0.0', group: 'SOFA' }, pricing);
  await server.start();
  console.log(`shop-service ready on ${server.publishPort}`);
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
