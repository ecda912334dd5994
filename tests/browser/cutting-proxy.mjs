// A loopback TCP proxy in front of a wsfn host that cuts connections the way a bad network
// does: both sockets are destroyed, no WebSocket close frame is sent either way, and each
// side sees its connection vanish. The tests of the client's sessions put it between the
// client and the host.
//
//   const proxy = new CuttingProxy(new URL('http://127.0.0.1:8080'), { onlyUpgrades: true });
//   await proxy.listen();          // proxy.url: http://127.0.0.1:<port>
//   proxy.startCutting({ min: 50, max: 500 });
//   proxy.refuse(true);            // new connections are dropped as they arrive
//   proxy.cutAll();

import net from 'node:net';

/** Header bytes read at most while deciding whether a connection is a WebSocket upgrade. */
const MAX_HEAD = 16 * 1024;

export class CuttingProxy {
  /**
   * @param {URL} target the host's address (`http://127.0.0.1:PORT`)
   * @param {{onlyUpgrades?: boolean}} [options] cut only connections whose request is a
   *   WebSocket upgrade, so that a page and its scripts load through the proxy unharmed
   */
  constructor(target, { onlyUpgrades = false } = {}) {
    this.target = { host: target.hostname, port: Number(target.port) };
    this.onlyUpgrades = onlyUpgrades;
    /** Connections cut so far. */
    this.cuts = 0;
    /** Connections accepted and passed on so far. */
    this.accepted = 0;
    this._refusing = false;
    this._cutting = null;
    /** Open connections that may be cut, each with its cut timer. */
    this._pairs = new Set();
    this._server = net.createServer((client) => this._accept(client));
  }

  /** Starts listening on a free loopback port. */
  async listen() {
    await new Promise((resolve, reject) => {
      this._server.once('error', reject);
      this._server.listen(0, '127.0.0.1', resolve);
    });
    this.url = `http://127.0.0.1:${this._server.address().port}`;
  }

  /**
   * Cuts every open connection, and every later one, a random `min` to `max` ms after it
   * opened (or after now, for those already open), until `limit` cuts were made.
   */
  startCutting({ min = 50, max = 500, limit = Infinity } = {}) {
    this._cutting = { min, max, limit };
    for (const pair of this._pairs) this._schedule(pair);
  }

  /** No more cuts; connections open now stay open. */
  stopCutting() {
    this._cutting = null;
    for (const pair of this._pairs) clearTimeout(pair.timer);
  }

  /** While on, every new connection is dropped as soon as it arrives. */
  refuse(on) {
    this._refusing = on;
  }

  /** Cuts every connection open now. */
  cutAll() {
    for (const pair of [...this._pairs]) this._cut(pair, true);
  }

  async close() {
    this.stopCutting();
    this.cutAll();
    await new Promise((resolve) => this._server.close(resolve));
  }

  _accept(client) {
    if (this._refusing) {
      client.destroy();
      return;
    }
    this.accepted += 1;
    client.on('error', () => {});
    if (!this.onlyUpgrades) {
      this._connect(client, Buffer.alloc(0), true);
      return;
    }
    // The request head says whether this is a WebSocket; read it before connecting on.
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1 && head.length < MAX_HEAD) return;
      client.off('data', onData);
      client.pause();
      const request = head.subarray(0, end === -1 ? head.length : end).toString('latin1');
      this._connect(client, head, /^upgrade:\s*websocket\s*$/im.test(request));
    };
    client.on('data', onData);
  }

  _connect(client, head, cuttable) {
    const upstream = net.connect(this.target);
    upstream.on('error', () => {});
    const pair = { client, upstream, timer: null };
    const end = () => {
      clearTimeout(pair.timer);
      this._pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    upstream.once('connect', () => {
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    if (!cuttable) return;
    this._pairs.add(pair);
    if (this._cutting) this._schedule(pair);
  }

  _schedule(pair) {
    const { min, max } = this._cutting;
    clearTimeout(pair.timer);
    pair.timer = setTimeout(() => this._cut(pair), min + Math.random() * (max - min));
  }

  _cut(pair, always = false) {
    if (!this._pairs.has(pair)) return;
    if (!always && !(this._cutting && this.cuts < this._cutting.limit)) return;
    this.cuts += 1;
    this._pairs.delete(pair);
    clearTimeout(pair.timer);
    // resetAndDestroy sends a TCP RST: the peer learns at once that the socket is gone.
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
  }
}
