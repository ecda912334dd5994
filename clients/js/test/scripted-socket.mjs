// A WebSocket whose server side a test plays, and the host's side of a session on it, for the
// client's unit tests. Not a test file itself: the tests import it.

import assert from 'node:assert/strict';

/** The id and secret the scripted host gives every session it starts. */
export const SESSION_ID = '0123456789abcdef0123456789abcdef';
export const SESSION_SECRET = 'fedcba9876543210fedcba9876543210';

/** A WebSocket whose server side the test plays: open(), receive(), drop(). */
export class ScriptedSocket {
  static made = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.protocol = '';
    this.binaryType = 'blob';
    this.sent = [];
    this.closedWith = null;
    ScriptedSocket.made.push(this);
  }

  send(data) {
    assert.equal(this.readyState, 1, 'sent only on an open socket');
    this.sent.push(data);
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 2;
  }

  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(data) {
    this.onmessage?.({ data });
  }

  drop(code, reason = '', wasClean = true) {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean });
  }

  /** @returns {URLSearchParams} the query the socket was opened with */
  get query() {
    return new URL(this.url).searchParams;
  }

  static last() {
    return ScriptedSocket.made.at(-1);
  }
}

/**
 * The host's side of a connection, with or without a session, so that tests of behaviour
 * the session does not change read the same in both modes.
 */
export class ScriptedHost {
  /** @param {boolean} session whether the client under test asks for sessions */
  constructor(session) {
    this.session = session;
  }

  /**
   * Completes the socket's handshake: opens it and, for a session, starts it (`s`) or
   * answers the client's resume request with `r<handled>`.
   * @param {ScriptedSocket} socket
   * @param {number} [handled=0]
   */
  accept(socket, handled = 0) {
    socket.open();
    if (!this.session) return;
    if (socket.query.has('wsfn-resume')) {
      assert.match(String(socket.sent[0]), /^r[0-9a-f]{32} \d+$/, 'a resume request comes first');
      socket.receive(`r${handled}`);
    } else {
      socket.receive(`s${SESSION_ID} ${SESSION_SECRET}`);
    }
  }

  /**
   * Sends an application message to the client.
   * @param {ScriptedSocket} socket
   * @param {string} text
   */
  deliver(socket, text) {
    socket.receive(this.session ? `m${text}` : text);
  }

  /**
   * The application messages the client wrote on the socket, without type bytes or
   * control messages.
   * @param {ScriptedSocket} socket
   * @returns {unknown[]}
   */
  written(socket) {
    if (!this.session) return socket.sent;
    return socket.sent.filter((frame) => typeof frame === 'string' && frame.startsWith('m')).map((frame) => frame.slice(1));
  }
}
