// Unit tests of the session protocol as wsfn.js speaks it (README.md at the repository root,
// "The session protocol, version 1"), against a scripted WebSocket whose host side each
// test plays frame by frame. Run with `node --test clients/js/test/`.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';

import { CLOSED, CONNECTING, OPEN, connect } from '../wsfn.js';
import { SESSION_ID, SESSION_SECRET, ScriptedSocket } from './scripted-socket.mjs';

const BASE = 'https://example.test/app/page.html';
const STARTED = `s${SESSION_ID} ${SESSION_SECRET}`;

function record(client) {
  const events = [];
  for (const type of ['open', 'message', 'close', 'error', 'reconnecting', 'resumed', 'reset']) {
    client.addEventListener(type, (event) => events.push(event));
  }
  return events;
}

const types = (events) => events.map((event) => event.type);

function client(options = {}) {
  return connect('chat', {
    base: BASE,
    WebSocket: ScriptedSocket,
    query: { room: 'lobby' },
    reconnect: { initialDelay: 100, jitter: 0 },
    ...options,
  });
}

/** A client whose session has started on its first socket. */
function started(options) {
  const chat = client(options);
  const events = record(chat);
  const socket = ScriptedSocket.last();
  socket.open();
  socket.receive(STARTED);
  return { chat, events, socket };
}

/** Drops the socket without a close frame and opens the next one once its delay passed. */
function dropAndRetry(socket, code = 1006) {
  socket.drop(code, '', false);
  mock.timers.tick(100);
  return ScriptedSocket.last();
}

/** Bytes of a binary frame as a plain array, for comparing. */
const bytes = (data) => [...new Uint8Array(ArrayBuffer.isView(data) ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data)];

beforeEach(() => {
  ScriptedSocket.made = [];
  mock.timers.enable({ apis: ['setTimeout'] });
});

afterEach(() => {
  mock.timers.reset();
});

test('a session is asked for in the URL, and the client opens only when the host started it', () => {
  const chat = client();
  const events = record(chat);
  const socket = ScriptedSocket.last();
  assert.equal(socket.url, 'wss://example.test/chat?room=lobby&wsfn-session=1');
  assert.equal(socket.binaryType, 'arraybuffer', 'type bytes are read as frames arrive');
  chat.send('early');
  socket.open();
  assert.equal(chat.readyState, CONNECTING, 'the 101 alone does not start a session');
  assert.deepEqual(socket.sent, [], 'nothing is written before the host starts the session');
  socket.receive(STARTED);
  assert.equal(chat.readyState, OPEN);
  assert.equal(chat.connectionId, SESSION_ID);
  assert.deepEqual(types(events), ['open']);
  assert.deepEqual(socket.sent, ['mearly']);
});

test('session: false speaks plain WebSocket, and so does reconnect: false unless told otherwise', () => {
  const chat = client({ session: false, binaryType: 'blob' });
  const socket = ScriptedSocket.last();
  assert.equal(socket.url, 'wss://example.test/chat?room=lobby');
  assert.equal(socket.binaryType, 'blob');
  socket.open();
  assert.equal(chat.readyState, OPEN);
  chat.send('plain');
  assert.deepEqual(socket.sent, ['plain']);
  assert.equal(chat.connectionId, '');

  // A session nobody would resume only delays on-close: reconnect: false asks for none.
  client({ reconnect: false });
  assert.equal(ScriptedSocket.last().query.has('wsfn-session'), false);
  client({ reconnect: false, session: true });
  assert.equal(ScriptedSocket.last().query.get('wsfn-session'), '1');
});

test('a signed URL keeps its query as written, with the session asked for after it', () => {
  const signed = '/chat?user=ann%20b&wsfn-expires=1700000000&wsfn-signature=a~b';
  connect(signed, { base: BASE, WebSocket: ScriptedSocket });
  assert.equal(ScriptedSocket.last().url, `wss://example.test${signed}&wsfn-session=1`);
});

test('application messages carry the m type byte both ways, text and binary alike', async () => {
  const { chat, events, socket } = started();
  chat.send('hi');
  chat.send(new Uint8Array([9, 1, 2, 3]).subarray(1, 3));
  chat.send(new Uint8Array([4, 5]).buffer);
  chat.send(new Blob([new Uint8Array([6])]));
  assert.equal(socket.sent[0], 'mhi');
  assert.deepEqual(bytes(socket.sent[1]), [0x6d, 1, 2]);
  assert.deepEqual(bytes(socket.sent[2]), [0x6d, 4, 5]);
  assert.deepEqual(bytes(await socket.sent[3].arrayBuffer()), [0x6d, 6]);

  socket.receive('m{"n":1}');
  socket.receive(new Uint8Array([0x6d, 7, 8]).buffer);
  socket.receive('m');
  const messages = events.filter((event) => event.type === 'message');
  assert.equal(messages[0].data, '{"n":1}');
  assert.deepEqual(messages[0].json, { n: 1 });
  assert.deepEqual(bytes(messages[1].data), [7, 8]);
  assert.equal(messages[2].data, '', 'an empty message is a message');
});

test('binary messages arrive as Blobs when binaryType asks for them', async () => {
  const { events, socket } = started({ binaryType: 'blob' });
  socket.receive(new Uint8Array([0x6d, 1]).buffer);
  const { data } = events.find((event) => event.type === 'message');
  assert.ok(data instanceof Blob);
  assert.deepEqual(bytes(await data.arrayBuffer()), [1]);
});

test('received messages are acknowledged every 32 messages, and within 200 ms of the first', () => {
  const { socket } = started();
  for (let n = 1; n <= 31; n += 1) socket.receive(`m${n}`);
  assert.deepEqual(socket.sent, [], 'not yet: 31 messages and no time passed');
  socket.receive('m32');
  assert.deepEqual(socket.sent, ['a32']);
  socket.receive('m33');
  assert.deepEqual(socket.sent, ['a32']);
  mock.timers.tick(200);
  assert.deepEqual(socket.sent, ['a32', 'a33']);
  mock.timers.tick(1000);
  assert.deepEqual(socket.sent, ['a32', 'a33'], 'nothing new, nothing said');
});

test("the host's acknowledgements release what the client kept", () => {
  const { chat, socket } = started();
  for (const text of ['one', 'two', 'three']) chat.send(text);
  assert.equal(chat.unacknowledged, 3);
  socket.receive('a2');
  assert.equal(chat.unacknowledged, 1);
  socket.receive('a1');
  assert.equal(chat.unacknowledged, 1, 'an older count changes nothing');
  socket.receive('a3');
  assert.equal(chat.unacknowledged, 0);
});

test('a lost socket resumes: the request first, then what the function did not handle, then the queue', () => {
  const { chat, events, socket } = started({ protocols: ['chat.v1'] });
  for (const text of ['one', 'two', 'three']) chat.send(text);
  socket.receive('a1');
  socket.receive('mfirst');
  socket.receive('msecond');
  socket.drop(1006, '', false);
  const close = events.find((event) => event.type === 'close');
  assert.equal(close.willReconnect, true);
  assert.equal(close.willResume, true);
  assert.equal(chat.connectionId, SESSION_ID, 'the session outlives its socket');
  assert.equal(chat.send('four'), true, 'kept while away');
  mock.timers.tick(100);

  const resumed = ScriptedSocket.last();
  assert.equal(resumed.url, `wss://example.test/chat?wsfn-session=1&wsfn-resume=${SESSION_ID}`);
  assert.deepEqual(resumed.protocols, ['chat.v1'], 'the subprotocols are offered again');
  resumed.open();
  assert.deepEqual(resumed.sent, [`r${SESSION_SECRET} 2`]);
  assert.equal(chat.readyState, CONNECTING, 'nothing flows until the host answers');
  assert.equal(chat.send('five'), true);
  mock.timers.tick(1000);
  assert.deepEqual(resumed.sent, [`r${SESSION_SECRET} 2`], 'nothing else before the answer');

  resumed.receive('r2');
  assert.equal(chat.readyState, OPEN);
  assert.deepEqual(resumed.sent, [`r${SESSION_SECRET} 2`, 'mthree', 'mfour', 'mfive']);
  const resumedEvent = events.find((event) => event.type === 'resumed');
  assert.equal(resumedEvent.resent, 1);
  assert.deepEqual(types(events), ['open', 'message', 'message', 'close', 'reconnecting', 'resumed'], 'no open for a resume');

  resumed.receive('mthird');
  assert.equal(events.at(-1).data, 'third', 'the replay and the live stream are delivered');
  mock.timers.tick(200);
  assert.equal(resumed.sent.at(-1), 'a3', 'the count continues across sockets');
  resumed.receive('a5');
  assert.equal(chat.unacknowledged, 0);
});

test('a resume that cannot connect is tried again, still as a resume', () => {
  const { chat, socket } = started();
  chat.send('one');
  const failed = dropAndRetry(socket);
  assert.ok(failed.query.has('wsfn-resume'));
  failed.drop(1006, '', false);
  mock.timers.tick(200);
  const again = ScriptedSocket.last();
  assert.notEqual(again, failed);
  assert.equal(again.query.get('wsfn-resume'), SESSION_ID);
  again.open();
  again.receive('r0');
  assert.deepEqual(again.sent, [`r${SESSION_SECRET} 0`, 'mone']);
});

test('1001, 1006 and 1012 resume; other reconnecting closes start a new session', () => {
  for (const code of [1001, 1006, 1012]) {
    const { events, socket } = started();
    const next = dropAndRetry(socket, code);
    assert.equal(events.find((event) => event.type === 'close').willResume, true, `${code}`);
    assert.equal(next.query.get('wsfn-resume'), SESSION_ID, `${code}`);
  }
  for (const code of [1011, 1013, 3000]) {
    const { chat, events, socket } = started();
    chat.send('lost with the session');
    const next = dropAndRetry(socket, code);
    const close = events.find((event) => event.type === 'close');
    assert.deepEqual([close.willReconnect, close.willResume], [true, false], `${code}`);
    assert.equal(next.url, 'wss://example.test/chat?room=lobby&wsfn-session=1', `${code}`);
    next.open();
    next.receive(STARTED);
    assert.deepEqual(next.sent, [], `${code}: a new session starts empty`);
    assert.equal(types(events).filter((type) => type === 'open').length, 2, `${code}`);
  }
  for (const code of [1000, 1008, 4000]) {
    const { chat, events, socket } = started();
    socket.drop(code, 'over');
    const close = events.find((event) => event.type === 'close');
    assert.deepEqual([close.willReconnect, close.willResume], [false, false], `${code}`);
    assert.equal(chat.readyState, CLOSED);
  }
});

test('a refused resume resets: a new session starts and keeps what was never written', () => {
  const { chat, events, socket } = started();
  chat.send('one');
  chat.send('two');
  socket.receive('a1');
  const resuming = dropAndRetry(socket);
  chat.send('queued');
  resuming.open();
  resuming.receive('xunknown');
  resuming.drop(1008, 'session refused: unknown');
  assert.deepEqual(resuming.closedWith?.code, 1000, 'the refused socket is closed');

  const reset = events.find((event) => event.type === 'reset');
  assert.equal(reset.reason, 'unknown');
  assert.deepEqual(reset.unacknowledged, ['two'], 'what the host never confirmed handling');
  assert.equal(events.filter((event) => event.type === 'close').length, 1, "the refusal's 1008 is not final");
  assert.equal(chat.connectionId, '');

  const fresh = ScriptedSocket.last();
  assert.equal(fresh.url, 'wss://example.test/chat?room=lobby&wsfn-session=1', 'at once, with the query');
  fresh.open();
  fresh.receive(`s${'ab'.repeat(16)} ${'cd'.repeat(16)}`);
  assert.equal(chat.connectionId, 'ab'.repeat(16));
  assert.deepEqual(fresh.sent, ['mqueued']);
  assert.deepEqual(types(events), ['open', 'close', 'reconnecting', 'reset', 'open']);
  fresh.receive('a1');
  assert.equal(chat.unacknowledged, 0, 'numbering starts again at 1');
});

test('a reset listener may close the client for good', () => {
  const { chat, socket } = started();
  chat.addEventListener('reset', () => chat.close());
  const resuming = dropAndRetry(socket);
  resuming.open();
  const made = ScriptedSocket.made.length;
  resuming.receive('xsecret');
  assert.equal(chat.readyState, CLOSED);
  assert.equal(ScriptedSocket.made.length, made, 'no new session');
});

test('a host that breaks the protocol ends the connection with 1002', () => {
  const cases = [
    ['a message before the session started', (socket) => socket.receive('mhello')],
    ['a malformed start', (socket) => socket.receive('s123 456')],
    ['an empty frame', (socket, start) => (start(), socket.receive(''))],
    ['an unknown type', (socket, start) => (start(), socket.receive('qhello'))],
    ['a control message in a binary frame', (socket, start) => (start(), socket.receive(new Uint8Array([0x61, 0x31]).buffer))],
    ['a count with a leading zero', (socket, start) => (start(), socket.receive('a01'))],
    ['an acknowledgement of more than was sent', (socket, start) => (start(), socket.receive('a1'))],
    ['a second start', (socket, start) => (start(), socket.receive(STARTED))],
  ];
  for (const [what, act] of cases) {
    const chat = client();
    const events = record(chat);
    const socket = ScriptedSocket.last();
    socket.open();
    act(socket, () => socket.receive(STARTED));
    const close = events.find((event) => event.type === 'close');
    assert.ok(close, what);
    assert.equal(close.code, 1002, what);
    assert.equal(close.willReconnect, false, what);
    assert.equal(socket.closedWith?.code, 1000, `${what}: the socket is closed`);
    assert.equal(chat.readyState, CLOSED, what);
  }
});

test('a resume answer outside what was sent and confirmed is a protocol error', () => {
  for (const answer of ['r0', 'r3', 'r', 'r01', 'mearly', 'a1']) {
    const { chat, events, socket } = started();
    chat.send('one');
    chat.send('two');
    socket.receive('a1');
    const resuming = dropAndRetry(socket);
    resuming.open();
    resuming.receive(answer);
    assert.equal(events.at(-1).type, 'close', answer);
    assert.equal(events.at(-1).code, 1002, answer);
  }
});

test('close() with a session open ends it with the code given', () => {
  const { chat, events, socket } = started();
  chat.close(1000, 'bye');
  assert.deepEqual(socket.closedWith, { code: 1000, reason: 'bye' });
  socket.drop(1000, 'bye');
  assert.equal(events.at(-1).willReconnect, false);
  mock.timers.tick(10_000);
  assert.equal(ScriptedSocket.made.length, 1, 'no resume after close()');
});

test('an acknowledgement due when the socket drops is carried by the resume request', () => {
  const { socket } = started();
  socket.receive('mone');
  const resuming = dropAndRetry(socket);
  mock.timers.tick(1000);
  resuming.open();
  assert.deepEqual(resuming.sent, [`r${SESSION_SECRET} 1`]);
  resuming.receive('r0');
  mock.timers.tick(1000);
  assert.deepEqual(resuming.sent, [`r${SESSION_SECRET} 1`], 'no acknowledgement repeats the request');
});
