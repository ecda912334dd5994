// wsfn browser client: one WebSocket to a wsfn function that comes back by itself.
//
// A plain ES module with no dependencies and no build step:
//
//   import { connect } from '/wsfn.js';
//   const chat = connect('chat', { query: { room: 'lobby', user: 'ann' } });
//   chat.addEventListener('message', (event) => console.log(event.json ?? event.data));
//   chat.sendJson({ hello: 'world' });
//
// See README.md beside this file for the whole API.

/** The connection is being made, or will be made again after a pause. */
export const CONNECTING = 0;
/** Messages flow. */
export const OPEN = 1;
/** close() was called and the closing handshake is under way. */
export const CLOSING = 2;
/** Closed for good: no reconnect will follow. */
export const CLOSED = 3;

/**
 * Close codes after which the client does not reconnect, because the server ended the
 * conversation on purpose or will refuse the same client again:
 * 1000 normal closure, 1002 protocol error, 1003 unsupported data, 1007 invalid data,
 * 1008 policy violation, 1009 message too big, 1010 missing extension, and every
 * application code 4000-4999 (which functions use to refuse or dismiss a client).
 * Other codes (1001 going away, 1006 connection lost, 1011 server error, 1012 restart,
 * 1013 try again later, ...) are followed by a reconnect.
 * @type {ReadonlySet<number>}
 */
export const FINAL_CLOSE_CODES = Object.freeze(new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]));

/**
 * Whether a close with this code ends the connection for good (see FINAL_CLOSE_CODES).
 * @param {number} code
 * @returns {boolean}
 */
export function isFinalCloseCode(code) {
  return FINAL_CLOSE_CODES.has(code) || (code >= 4000 && code <= 4999);
}

/**
 * @typedef {object} ReconnectOptions
 * @property {number} [initialDelay=500] milliseconds before the first reconnect attempt
 * @property {number} [maxDelay=30000] the longest pause between attempts
 * @property {number} [factor=2] each failed attempt multiplies the pause by this
 * @property {number} [jitter=0.5] fraction of each pause that is random (0 to 1), so that
 *   many clients dropped at once do not come back at the same moment
 * @property {number} [maxAttempts=Infinity] attempts in a row before giving up
 * @property {number} [stableAfter=5000] a connection that stayed open this long resets the
 *   backoff; one that dropped sooner continues it
 * @property {(event: WsfnCloseEvent) => boolean} [shouldReconnect] overrides the choice made
 *   from the close code (see isFinalCloseCode); not asked after close() was called
 */

/**
 * @typedef {object} ConnectOptions
 * @property {Record<string, string|number|boolean>|Iterable<[string, string]>|URLSearchParams|string} [query]
 *   query parameters added to the URL (on-connect reads them). Leave it out for a signed
 *   URL, whose signature covers the query as issued.
 * @property {string|string[]} [protocols] subprotocols offered to the function
 * @property {boolean|ReconnectOptions} [reconnect=true] reconnect after an unexpected close
 * @property {number} [queueLimit=100] messages kept while not connected (0 disables the
 *   queue); send() returns false for a message that does not fit
 * @property {BinaryType} [binaryType='arraybuffer'] how binary messages are delivered
 * @property {string|URL} [base] what names and paths are resolved against; by default the
 *   page's location
 * @property {typeof WebSocket} [WebSocket] the WebSocket implementation, for environments
 *   without a global one
 */

const RECONNECT_DEFAULTS = Object.freeze({
  initialDelay: 500,
  maxDelay: 30000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: Infinity,
  stableAfter: 5000,
  shouldReconnect: undefined,
});

/** A message from the function: `data` as received, `json` when the text parses as JSON. */
export class WsfnMessageEvent extends Event {
  /**
   * @param {string|ArrayBuffer|Blob} data
   */
  constructor(data) {
    super('message');
    /** @type {string|ArrayBuffer|Blob} */
    this.data = data;
    /** @type {unknown} the parsed JSON value, or undefined for binary or non-JSON text */
    this.json = undefined;
    if (typeof data === 'string') {
      try {
        this.json = JSON.parse(data);
      } catch {
        // Plain text: `data` is all there is.
      }
    }
  }
}

/** The connection closed; `willReconnect` says whether another attempt follows. */
export class WsfnCloseEvent extends Event {
  /**
   * @param {{code: number, reason: string, wasClean: boolean, willReconnect: boolean}} init
   */
  constructor({ code, reason, wasClean, willReconnect }) {
    super('close');
    /** @type {number} */
    this.code = code;
    /** @type {string} */
    this.reason = reason;
    /** @type {boolean} */
    this.wasClean = wasClean;
    /** @type {boolean} */
    this.willReconnect = willReconnect;
  }
}

/** A reconnect attempt is scheduled `delay` milliseconds from now. */
export class WsfnReconnectingEvent extends Event {
  /**
   * @param {number} attempt 1 for the first attempt after a drop
   * @param {number} delay milliseconds until the attempt
   */
  constructor(attempt, delay) {
    super('reconnecting');
    /** @type {number} */
    this.attempt = attempt;
    /** @type {number} */
    this.delay = delay;
  }
}

/**
 * Resolves what connect() was given to a ws: or wss: URL.
 * @param {string|URL} target a function name, a ws(s)/http(s) URL, or a path such as a
 *   signed URL (`/chat?...&wsfn-expires=..&wsfn-signature=..`)
 * @param {ConnectOptions['query']} query
 * @param {string|URL|undefined} base
 * @returns {URL}
 */
export function resolveUrl(target, query, base) {
  const text = String(target);
  let url;
  // Anything with a scheme is a URL; only ws(s) and http(s) ones are usable.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    url = new URL(text);
  } else {
    const origin = base ?? globalThis.location?.href;
    if (origin === undefined) {
      throw new TypeError(`cannot resolve "${text}" without a page location: pass options.base`);
    }
    const path = text.startsWith('/') ? text : `/${encodeURIComponent(text)}`;
    url = new URL(path, origin);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new TypeError(`"${text}" is not a WebSocket address`);
  }
  if (query !== undefined) {
    let pairs;
    if (typeof query === 'string') pairs = new URLSearchParams(query);
    else if (typeof query[Symbol.iterator] === 'function') pairs = query;
    else pairs = Object.entries(query);
    for (const [key, value] of pairs) url.searchParams.append(key, String(value));
  }
  url.hash = '';
  return url;
}

/**
 * A connection to a wsfn function that reconnects after unexpected closes and keeps what
 * is sent meanwhile. Events: `open`, `message` (WsfnMessageEvent), `close` (WsfnCloseEvent),
 * `error`, `reconnecting` (WsfnReconnectingEvent).
 */
export class WsfnSocket extends EventTarget {
  /**
   * Use connect() rather than this constructor.
   * @param {string|URL} target
   * @param {ConnectOptions} [options]
   */
  constructor(target, options = {}) {
    super();
    /** @type {string} the URL connected to */
    this.url = resolveUrl(target, options.query, options.base).href;
    this._protocols = options.protocols;
    this._binaryType = options.binaryType ?? 'arraybuffer';
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('no WebSocket implementation: pass options.WebSocket');
    }
    this._reconnect =
      options.reconnect === false
        ? null
        : { ...RECONNECT_DEFAULTS, ...(options.reconnect === true ? {} : options.reconnect) };
    this._queueLimit = Math.max(0, options.queueLimit ?? 100);
    /** @type {Array<string|ArrayBuffer|ArrayBufferView|Blob>} */
    this._queue = [];
    /** @type {WebSocket|null} */
    this._socket = null;
    this._state = CONNECTING;
    this._attempt = 0;
    this._openedAt = 0;
    this._timer = null;
    this._open();
  }

  /** @returns {number} CONNECTING (also while waiting to reconnect), OPEN, CLOSING or CLOSED */
  get readyState() {
    return this._state;
  }

  /** @returns {string} the subprotocol the function chose, or '' */
  get protocol() {
    return this._socket?.protocol ?? '';
  }

  /** @returns {number} messages waiting for the connection to open */
  get queued() {
    return this._queue.length;
  }

  /**
   * Sends a message now, or queues it while the connection is (re)connecting.
   * @param {string|ArrayBuffer|ArrayBufferView|Blob} data
   * @returns {boolean} false when the message was dropped: the queue is full, or the
   *   connection is closing or closed for good
   */
  send(data) {
    if (this._state === OPEN && this._socket?.readyState === 1) {
      this._socket.send(data);
      return true;
    }
    if (this._state !== CONNECTING || this._queue.length >= this._queueLimit) {
      return false;
    }
    this._queue.push(data);
    return true;
  }

  /**
   * Sends `value` as JSON text.
   * @param {unknown} value
   * @returns {boolean} as send()
   */
  sendJson(value) {
    return this.send(JSON.stringify(value));
  }

  /**
   * Closes the connection for good: no reconnect follows and queued messages are dropped.
   * @param {number} [code=1000] 1000 or 3000-4999, as the WebSocket API allows
   * @param {string} [reason='']
   */
  close(code = 1000, reason = '') {
    if (this._state === CLOSING || this._state === CLOSED) return;
    clearTimeout(this._timer);
    this._timer = null;
    this._queue = [];
    const socket = this._socket;
    if (socket && socket.readyState <= 1) {
      this._state = CLOSING;
      socket.close(code, reason);
    } else {
      // Waiting between attempts: there is no socket to close, so the close is immediate.
      this._state = CLOSED;
      this._socket = null;
      this.dispatchEvent(new WsfnCloseEvent({ code, reason, wasClean: true, willReconnect: false }));
    }
  }

  /**
   * Adds a listener and returns a function that removes it.
   * @param {'open'|'message'|'close'|'error'|'reconnecting'} type
   * @param {(event: Event) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  _open() {
    const socket = new this._WebSocket(this.url, this._protocols);
    socket.binaryType = this._binaryType;
    this._socket = socket;
    socket.onopen = () => {
      if (this._socket !== socket) return;
      this._state = OPEN;
      this._openedAt = Date.now();
      this.dispatchEvent(new Event('open'));
      // Listeners may have sent or closed; what was queued goes out first otherwise.
      const queued = this._queue;
      this._queue = [];
      for (const data of queued) {
        if (this._state !== OPEN) break;
        socket.send(data);
      }
    };
    socket.onmessage = (event) => {
      if (this._socket !== socket) return;
      this.dispatchEvent(new WsfnMessageEvent(event.data));
    };
    socket.onerror = () => {
      if (this._socket !== socket) return;
      // Browsers give no detail here; the close event that follows has the code.
      this.dispatchEvent(new Event('error'));
    };
    socket.onclose = (event) => {
      if (this._socket !== socket) return;
      this._socket = null;
      this._closed(event.code, event.reason, event.wasClean);
    };
  }

  _closed(code, reason, wasClean) {
    const wasOpen = this._openedAt !== 0;
    const userClosed = this._state === CLOSING;
    const policy = this._reconnect;
    if (policy && wasOpen && Date.now() - this._openedAt >= policy.stableAfter) {
      this._attempt = 0;
    }
    this._openedAt = 0;
    const event = new WsfnCloseEvent({ code, reason, wasClean, willReconnect: false });
    let again = false;
    if (!userClosed && policy && this._attempt < policy.maxAttempts) {
      again = policy.shouldReconnect ? Boolean(policy.shouldReconnect(event)) : !isFinalCloseCode(code);
    }
    event.willReconnect = again;
    if (!again) {
      this._state = CLOSED;
      this._queue = [];
      this.dispatchEvent(event);
      return;
    }
    this._state = CONNECTING;
    this.dispatchEvent(event);
    // A listener may have called close().
    if (this._state !== CONNECTING) return;
    this._attempt += 1;
    const delay = this._delay(this._attempt);
    this.dispatchEvent(new WsfnReconnectingEvent(this._attempt, delay));
    if (this._state !== CONNECTING) return;
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this._state === CONNECTING) this._open();
    }, delay);
  }

  _delay(attempt) {
    const { initialDelay, maxDelay, factor, jitter } = this._reconnect;
    const ceiling = Math.min(maxDelay, initialDelay * factor ** (attempt - 1));
    const spread = Math.min(1, Math.max(0, jitter));
    return Math.round(ceiling * (1 - spread * Math.random()));
  }
}

/**
 * Connects to a wsfn function.
 * @param {string|URL} target a function name (`'chat'`, resolved to
 *   `ws(s)://<page host>/chat`), a full `ws://`/`wss://` URL, or a path such as a signed
 *   URL returned by the host (`/chat?...&wsfn-expires=..&wsfn-signature=..`)
 * @param {ConnectOptions} [options]
 * @returns {WsfnSocket}
 */
export function connect(target, options) {
  return new WsfnSocket(target, options);
}
