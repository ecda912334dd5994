// wsfn browser client: one WebSocket to a wsfn function that comes back by itself.
//
// A plain ES module with no dependencies and no build step:
//
//   import { connect } from '/wsfn.js';
//   const chat = connect('chat', { query: { room: 'lobby', user: 'ann' } });
//   chat.addEventListener('message', (event) => console.log(event.json ?? event.data));
//   chat.sendJson({ hello: 'world' });
//
// By default it asks the host for a resumable session (README.md at the repository root,
// "The session protocol, version 1"): when the socket drops, it resumes the same connection
// and neither side loses a message. See README.md beside this file for the whole API.

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
 * Close codes that mean a session's socket was lost rather than closed: 1001 (going away),
 * 1006 (ended without a close frame) and 1012 (service restart). After these the client
 * resumes the session; after any other code the session is over.
 * @type {ReadonlySet<number>}
 */
export const RESUMABLE_CLOSE_CODES = Object.freeze(new Set([1001, 1006, 1012]));

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
 * @property {boolean} [session] ask the host for a resumable session (the default, unless
 *   `reconnect` is false); `false` speaks plain WebSocket (for a host without sessions, or a
 *   server that is not wsfn)
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

// The session protocol's limits. The host wants an acknowledgement at least every 32
// messages and within 200 ms of the first unacknowledged one; acknowledging after half
// that leaves room for a late timer.
const ACK_EVERY = 32;
const ACK_DELAY_MS = 100;
const MESSAGE_BYTE = 0x6d; // 'm'
const COUNT = /^(?:0|[1-9][0-9]*)$/;
const STARTED = /^([0-9a-f]{32}) ([0-9a-f]{32})$/i;
/** The close code the client sends when the host breaks the protocol: browsers may send no other. */
const CLIENT_CLOSE_CODE = 1000;
/** What the application is told when the host broke the protocol (the socket never carried it). */
const PROTOCOL_ERROR = 1002;

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

/**
 * The socket closed; `willReconnect` says whether another attempt follows, and
 * `willResume` whether that attempt continues the same session (nothing is lost) rather
 * than starting a new connection.
 */
export class WsfnCloseEvent extends Event {
  /**
   * @param {{code: number, reason: string, wasClean: boolean, willReconnect: boolean,
   *   willResume?: boolean}} init
   */
  constructor({ code, reason, wasClean, willReconnect, willResume = false }) {
    super('close');
    /** @type {number} */
    this.code = code;
    /** @type {string} */
    this.reason = reason;
    /** @type {boolean} */
    this.wasClean = wasClean;
    /** @type {boolean} */
    this.willReconnect = willReconnect;
    /** @type {boolean} */
    this.willResume = willResume;
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

/** The session resumed after a drop: the same connection continues and nothing was lost. */
export class WsfnResumedEvent extends Event {
  /**
   * @param {number} resent messages sent again because the function had not handled them
   */
  constructor(resent) {
    super('resumed');
    /** @type {number} */
    this.resent = resent;
  }
}

/**
 * The host refused to resume the session (it expired, overflowed, or is not this client's):
 * continuity is lost and a new connection follows. `unacknowledged` holds what was sent
 * before the drop without the host confirming it was handled: it may or may not have been.
 */
export class WsfnResetEvent extends Event {
  /**
   * @param {string} reason the host's word: `unknown`, `secret`, `function` or `malformed`
   * @param {Array<string|ArrayBuffer|ArrayBufferView|Blob>} unacknowledged
   */
  constructor(reason, unacknowledged) {
    super('reset');
    /** @type {string} */
    this.reason = reason;
    /** @type {Array<string|ArrayBuffer|ArrayBufferView|Blob>} */
    this.unacknowledged = unacknowledged;
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
 * The URL of a new session: the application's URL with `wsfn-session=1` appended. Appended
 * as text, so the query a signature covers keeps its exact spelling.
 * @param {string} href
 * @returns {string}
 */
function newSessionUrl(href) {
  const url = new URL(href);
  if (!url.searchParams.has('wsfn-session')) {
    url.search = url.search ? `${url.search}&wsfn-session=1` : '?wsfn-session=1';
  }
  return url.href;
}

/**
 * The URL that resumes session `id`. The host ignores the rest of the query, and leaving
 * it out keeps an expired signature from mattering: the secret proves who resumes.
 * @param {string} href
 * @param {string} id
 * @returns {string}
 */
function resumeUrl(href, id) {
  const url = new URL(href);
  url.search = `?wsfn-session=1&wsfn-resume=${id}`;
  return url.href;
}

/**
 * A count of the session protocol: decimal, no sign, no leading zeros. Counts that a
 * JavaScript number cannot hold exactly are refused; a session would need 2^53 messages.
 * @param {string} text
 * @returns {number|null}
 */
function parseCount(text) {
  if (!COUNT.test(text)) return null;
  const count = Number(text);
  return Number.isSafeInteger(count) ? count : null;
}

/** @returns {boolean} whether `value` is an ArrayBuffer, also one from another realm */
function isArrayBuffer(value) {
  return Object.prototype.toString.call(value) === '[object ArrayBuffer]';
}

/**
 * An application message as a session frame: the `m` type byte, then the message, in a
 * frame of the message's own type (text stays text, binary stays binary).
 * @param {string|ArrayBuffer|ArrayBufferView|Blob} data
 * @returns {string|Uint8Array|Blob}
 */
function encodeMessage(data) {
  if (typeof data === 'string') return `m${data}`;
  let bytes = null;
  if (isArrayBuffer(data)) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes) {
    const frame = new Uint8Array(bytes.byteLength + 1);
    frame[0] = MESSAGE_BYTE;
    frame.set(bytes, 1);
    return frame;
  }
  if (typeof Blob === 'function' && data instanceof Blob) return new Blob(['m', data]);
  // What a WebSocket does with anything else: send it as text.
  return `m${String(data)}`;
}

/**
 * @typedef {{type: 'm', data: string|ArrayBuffer|Blob}
 *   | {type: 's'|'r'|'a'|'x', body: string}
 *   | {type: 'error', what: string}} Frame
 */

/**
 * Reads one frame of a session socket (which delivers binary as ArrayBuffer).
 * @param {unknown} data the frame's data as the WebSocket gave it
 * @param {BinaryType} binaryType how the application wants binary messages
 * @returns {Frame}
 */
function decodeFrame(data, binaryType) {
  if (typeof data === 'string') {
    if (data.length === 0) return { type: 'error', what: 'an empty frame' };
    const type = data[0];
    const body = data.slice(1);
    if (type === 'm') return { type, data: body };
    if (!'srax'.includes(type)) {
      return { type: 'error', what: `a frame of unknown type ${JSON.stringify(type)}` };
    }
    return { type, body };
  }
  let bytes = null;
  if (isArrayBuffer(data)) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (!bytes) return { type: 'error', what: 'a binary frame the client cannot read' };
  if (bytes.byteLength === 0) return { type: 'error', what: 'an empty frame' };
  if (bytes[0] !== MESSAGE_BYTE) return { type: 'error', what: 'a binary frame that is not a message' };
  const payload = bytes.slice(1).buffer;
  return { type: 'm', data: binaryType === 'blob' ? new Blob([payload]) : payload };
}

/**
 * One session's state across its sockets: who it is, how many messages each side has
 * seen, and what the client sent that the host has not yet confirmed as handled.
 */
class Session {
  /**
   * @param {string} id the connection id
   * @param {string} secret what proves this client may resume it
   */
  constructor(id, secret) {
    this.id = id;
    this.secret = secret;
    /** Messages received from the host: the host numbers them 1, 2, 3, ... */
    this.received = 0;
    /** The received count last told to the host (by `a` or by a resume request). */
    this.acknowledged = 0;
    /** How many of the client's messages the host said its function handled. */
    this.handled = 0;
    /**
     * What was written and not yet confirmed handled, oldest first; the first is message
     * number `handled + 1`. Kept to be written again on resume.
     * @type {Array<{data: string|ArrayBuffer|ArrayBufferView|Blob, frame: string|Uint8Array|Blob}>}
     */
    this.kept = [];
  }

  /** @returns {number} how many messages the client has written in this session */
  get written() {
    return this.handled + this.kept.length;
  }

  /**
   * Drops what the host confirmed handled.
   * @param {number} handled the host's count, at least `this.handled` and at most `written`
   */
  confirm(handled) {
    this.kept.splice(0, handled - this.handled);
    this.handled = handled;
  }
}

/**
 * A connection to a wsfn function that resumes or reconnects after unexpected closes and
 * keeps what is sent meanwhile. Events: `open`, `message` (WsfnMessageEvent), `close`
 * (WsfnCloseEvent), `error`, `reconnecting` (WsfnReconnectingEvent), `resumed`
 * (WsfnResumedEvent), `reset` (WsfnResetEvent).
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
    // Without reconnects a session could never be resumed: it would only delay on-close.
    this._sessions = options.session ?? options.reconnect !== false;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('no WebSocket implementation: pass options.WebSocket');
    }
    this._reconnect =
      options.reconnect === false
        ? null
        : { ...RECONNECT_DEFAULTS, ...(options.reconnect === true ? {} : options.reconnect) };
    this._queueLimit = Math.max(0, options.queueLimit ?? 100);
    /** Messages not yet written to any socket. @type {Array<string|ArrayBuffer|ArrayBufferView|Blob>} */
    this._queue = [];
    /** @type {WebSocket|null} */
    this._socket = null;
    /** @type {Session|null} the session, kept across drops until it ends */
    this._session = null;
    /**
     * What the current socket waits for before messages flow: `'start'` (the host's `s`),
     * `'resume'` (its answer to a resume request) or null (nothing; or no session).
     * @type {'start'|'resume'|null}
     */
    this._awaiting = null;
    this._ackTimer = null;
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

  /** @returns {number} messages sent that the host has not yet confirmed as handled */
  get unacknowledged() {
    return this._session?.kept.length ?? 0;
  }

  /** @returns {string} the host's id of this connection while a session lasts, else '' */
  get connectionId() {
    return this._session?.id ?? '';
  }

  /**
   * Sends a message now, or queues it while the connection is (re)connecting.
   * @param {string|ArrayBuffer|ArrayBufferView|Blob} data
   * @returns {boolean} false when the message was dropped: the queue is full, or the
   *   connection is closing or closed for good
   */
  send(data) {
    if (this._state === OPEN && this._socket?.readyState === 1) {
      this._write(data);
      return true;
    }
    if (this._state === CLOSING || this._state === CLOSED || this._queue.length >= this._queueLimit) {
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
   * With a session open this ends it at once (the function's on-close runs); while waiting
   * to resume there is no socket to say so, and the host ends the session when its resume
   * window passes.
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
      this._endSession();
      this.dispatchEvent(new WsfnCloseEvent({ code, reason, wasClean: true, willReconnect: false }));
    }
  }

  /**
   * Adds a listener and returns a function that removes it.
   * @param {'open'|'message'|'close'|'error'|'reconnecting'|'resumed'|'reset'} type
   * @param {(event: Event) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  _open() {
    const session = this._session;
    let url = this.url;
    if (this._sessions) url = session ? resumeUrl(this.url, session.id) : newSessionUrl(this.url);
    const socket = new this._WebSocket(url, this._protocols);
    // A session reads each binary frame's type byte as it arrives, which a Blob would not allow.
    socket.binaryType = this._sessions ? 'arraybuffer' : this._binaryType;
    this._socket = socket;
    this._awaiting = this._sessions ? (session ? 'resume' : 'start') : null;
    socket.onopen = () => {
      if (this._socket !== socket) return;
      if (!this._sessions) {
        this._attached(new Event('open'));
      } else if (session) {
        // The request doubles as an acknowledgement: the replay starts after `received`.
        socket.send(`r${session.secret} ${session.received}`);
        session.acknowledged = session.received;
      }
    };
    socket.onmessage = (event) => {
      if (this._socket !== socket) return;
      if (this._sessions) this._frame(event.data);
      else this.dispatchEvent(new WsfnMessageEvent(event.data));
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

  /**
   * Messages flow from now on: writes what waited, then tells the application.
   * @param {Event} event `open` for a new connection, `resumed` for a resumed session
   */
  _attached(event) {
    this._state = OPEN;
    this._openedAt = Date.now();
    const queued = this._queue;
    this._queue = [];
    for (const data of queued) this._write(data);
    this.dispatchEvent(event);
  }

  /** Writes one application message on the open socket; a session keeps it until handled. */
  _write(data) {
    const session = this._session;
    if (!session) {
      this._socket.send(data);
      return;
    }
    const frame = encodeMessage(data);
    session.kept.push({ data, frame });
    this._socket.send(frame);
  }

  /** One frame of a session socket, by what the socket is waiting for. */
  _frame(data) {
    const frame = decodeFrame(data, this._binaryType);
    if (frame.type === 'error') {
      this._protocolError(frame.what);
    } else if (this._awaiting === 'start') {
      if (frame.type === 's') this._started(frame.body);
      else this._protocolError(`the first frame of a new session is ${frame.type}, not s`);
    } else if (this._awaiting === 'resume') {
      if (frame.type === 'r') this._resumed(frame.body);
      else if (frame.type === 'x') this._refused(frame.body);
      else this._protocolError(`the answer to a resume is ${frame.type}, not r or x`);
    } else if (frame.type === 'm') {
      this._received(frame.data);
    } else if (frame.type === 'a') {
      this._confirmed(frame.body);
    } else {
      this._protocolError(`an unexpected ${frame.type} frame`);
    }
  }

  /** `s<id> <secret>`: a new session started. */
  _started(body) {
    const match = STARTED.exec(body);
    if (!match) {
      this._protocolError(`a malformed session start ${JSON.stringify(body)}`);
      return;
    }
    this._session = new Session(match[1], match[2]);
    this._awaiting = null;
    this._attached(new Event('open'));
  }

  /** `r<handled>`: the session resumed; the replay follows. Writes again what was not handled. */
  _resumed(body) {
    const session = this._session;
    const handled = parseCount(body);
    if (handled === null || handled < session.handled || handled > session.written) {
      this._protocolError(`a resume answer of ${JSON.stringify(body)} after ${session.written} messages sent`);
      return;
    }
    session.confirm(handled);
    this._awaiting = null;
    for (const { frame } of session.kept) this._socket.send(frame);
    this._attached(new WsfnResumedEvent(session.kept.length));
  }

  /** `x<reason>`: the resume was refused and the session is over; a new one starts now. */
  _refused(reason) {
    const socket = this._socket;
    const unacknowledged = this._session.kept.map(({ data }) => data);
    this._socket = null;
    // The host closes it too; closing here keeps a silent host from holding it open.
    socket.close(CLIENT_CLOSE_CODE);
    this._endSession();
    this.dispatchEvent(new WsfnResetEvent(reason, unacknowledged));
    // A listener may have called close().
    if (this._state === CONNECTING) this._open();
  }

  /** An application message of the session. */
  _received(data) {
    const session = this._session;
    session.received += 1;
    if (session.received - session.acknowledged >= ACK_EVERY) {
      this._acknowledge();
    } else if (this._ackTimer === null) {
      this._ackTimer = setTimeout(() => this._acknowledge(), ACK_DELAY_MS);
    }
    this.dispatchEvent(new WsfnMessageEvent(data));
  }

  /** Tells the host how many messages arrived, so that it stops keeping them. */
  _acknowledge() {
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
    const session = this._session;
    if (!session || this._awaiting !== null || this._socket?.readyState !== 1) return;
    if (session.received > session.acknowledged) {
      this._socket.send(`a${session.received}`);
      session.acknowledged = session.received;
    }
  }

  /** `a<handled>`: the host's function handled this many of the client's messages. */
  _confirmed(body) {
    const session = this._session;
    const handled = parseCount(body);
    if (handled === null || handled > session.written) {
      this._protocolError(`an acknowledgement of ${JSON.stringify(body)} after ${session.written} messages sent`);
      return;
    }
    if (handled > session.handled) session.confirm(handled);
  }

  /**
   * The host broke the session protocol: a client that cannot trust the stream ends it, and
   * the application sees a close with 1002, which does not reconnect unless
   * `shouldReconnect` says so.
   * @param {string} what
   */
  _protocolError(what) {
    const socket = this._socket;
    this._socket = null;
    socket.close(CLIENT_CLOSE_CODE, 'session protocol error');
    this._endSession();
    this._closed(PROTOCOL_ERROR, `session protocol error: ${what}`, false);
  }

  /** Forgets the session: the next socket asks for a new one. */
  _endSession() {
    this._session = null;
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
  }

  _closed(code, reason, wasClean) {
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
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
    event.willResume = again && this._session !== null && RESUMABLE_CLOSE_CODES.has(code);
    // Any other close ended the session on the host (or will: a session not resumed expires).
    if (!event.willResume) this._endSession();
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
