// A loopback TCP proxy in front of a wsfn host that cuts connections the way a bad network
// does: a connection first goes dark (what either side writes is swallowed, as a dead network
// swallows what is in flight), then both of its sockets are reset, without a WebSocket close
// frame either way. The tests of the client's sessions put it between the client and the host.
//
//   const proxy = new CuttingProxy(new URL('http://127.0.0.1:8080'), { onlyUpgrades: true });
//   await proxy.listen();          // proxy.url: http://127.0.0.1:<port>
//   proxy.startCutting({ min: 50, max: 500, dark: 300 });   // at random, until stopCutting()
//   proxy.darkenAll(); proxy.cutAll();                      // now, as the test chooses
//   proxy.refuse(true);            // new connections are dropped as they arrive

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
    this._refusing = false;
    this._cutting = null;
    /** Open connections that may be cut, each with its cut timer. */
    this._live = new Set();
    /** Connections gone dark or cut, until both of their sockets have closed. */
    this._dying = new Set();
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
   * opened (or after now, for those already open); each goes dark for a random part of
   * `dark` ms before its sockets are reset.
   */
  startCutting({ min = 50, max = 500, dark = 0 } = {}) {
    this._cutting = { min, max, dark };
    for (const pair of this._live) this._schedule(pair);
  }

  /** No more random cuts. Resolves once the connections already cut have closed. */
  async stopCutting() {
    this._cutting = null;
    for (const pair of this._live) clearTimeout(pair.timer);
    while (this._dying.size > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  /** @returns {number} open connections that have not been cut or darkened */
  get openConnections() {
    return this._live.size;
  }

  /** While on, every new connection is dropped as soon as it arrives. */
  refuse(on) {
    this._refusing = on;
  }

  /** Every open connection goes dark: what is written to it from now on is swallowed. */
  darkenAll() {
    for (const pair of [...this._live]) this._darken(pair);
  }

  /** Resets every open or dark connection now. */
  cutAll() {
    for (const pair of [...this._live, ...this._dying]) this._reset(pair);
  }

  async close() {
    await this.stopCutting();
    this.cutAll();
    await new Promise((resolve) => this._server.close(resolve));
  }

  _accept(client) {
    if (this._refusing) {
      client.destroy();
      return;
    }
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
    const pair = { client, upstream, timer: null, counted: false, closed: false };
    const end = () => {
      pair.closed = true;
      clearTimeout(pair.timer);
      this._live.delete(pair);
      this._dying.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    upstream.once('connect', () => {
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    if (!cuttable) return;
    this._live.add(pair);
    if (this._cutting) this._schedule(pair);
  }

  _schedule(pair) {
    const { min, max } = this._cutting;
    clearTimeout(pair.timer);
    pair.timer = setTimeout(() => {
      const dark = Math.random() * (this._cutting?.dark ?? 0);
      this._darken(pair);
      setTimeout(() => this._reset(pair), dark);
    }, min + Math.random() * (max - min));
  }

  /** Stops passing bytes on: both sides keep writing into a void, as on a dead network. */
  _darken(pair) {
    if (!this._live.delete(pair)) return;
    clearTimeout(pair.timer);
    this._dying.add(pair);
    this._count(pair);
    pair.client.unpipe(pair.upstream);
    pair.upstream.unpipe(pair.client);
    pair.client.on('data', () => {}).resume();
    pair.upstream.on('data', () => {}).resume();
  }

  /** Resets both sockets: a TCP RST tells each peer at once that the connection is gone. */
  _reset(pair) {
    if (pair.closed) return;
    clearTimeout(pair.timer);
    this._live.delete(pair);
    this._dying.add(pair);
    this._count(pair);
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
  }

  _count(pair) {
    if (pair.counted) return;
    pair.counted = true;
    this.cuts += 1;
  }
}
