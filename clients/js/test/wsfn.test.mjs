// Unit tests of wsfn.js against a scripted WebSocket: address resolution, the send queue,
// and when and how it reconnects, each with a session (the default) and without one.
// Run with `node --test clients/js/test/`.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';

import { CLOSED, CONNECTING, OPEN, connect, isFinalCloseCode, resolveUrl } from '../wsfn.js';
import { ScriptedHost, ScriptedSocket } from './scripted-socket.mjs';

const BASE = 'https://example.test/app/page.html';

/** Records every event of a client, in order. */
function record(client) {
  const events = [];
  for (const type of ['open', 'message', 'close', 'error', 'reconnecting', 'resumed', 'reset']) {
    client.addEventListener(type, (event) => events.push(event));
  }
  return events;
}

/** The ways the tests below run: the host's side of each is played by `host`. */
const MODES = [
  { name: 'with a session', session: true },
  { name: 'without a session', session: false },
];

beforeEach(() => {
  ScriptedSocket.made = [];
  mock.timers.enable({ apis: ['setTimeout'] });
});

afterEach(() => {
  mock.timers.reset();
});

test('names, paths and URLs resolve to WebSocket addresses', () => {
  assert.equal(resolveUrl('chat', undefined, BASE).href, 'wss://example.test/chat');
  assert.equal(resolveUrl('chat', undefined, 'http://127.0.0.1:8080/demo/').href, 'ws://127.0.0.1:8080/chat');
  assert.equal(
    resolveUrl('chat', { room: 'a b', user: 'ann' }, BASE).href,
    'wss://example.test/chat?room=a+b&user=ann',
  );
  const signed = '/chat?user=ann&wsfn-expires=1700000000&wsfn-signature=abc';
  assert.equal(resolveUrl(signed, undefined, BASE).href, `wss://example.test${signed}`);
  assert.equal(resolveUrl('ws://other:9/echo#x', [['a', '1']], BASE).href, 'ws://other:9/echo?a=1');
  assert.equal(resolveUrl('name/with?odd', undefined, BASE).href, 'wss://example.test/name%2Fwith%3Fodd');
  assert.throws(() => resolveUrl('ftp://x/chat', undefined, BASE), TypeError);
  assert.throws(() => resolveUrl('chat', undefined, undefined), TypeError);
});

for (const { name, session } of MODES) {
  const host = new ScriptedHost(session);
  const client = (options = {}) => connect('chat', { base: BASE, WebSocket: ScriptedSocket, session, ...options });

  test(`${name}: messages sent before the open are queued, in order, up to the limit`, () => {
    const chat = client({ queueLimit: 2 });
    assert.equal(chat.readyState, CONNECTING);
    assert.equal(chat.send('one'), true);
    assert.equal(chat.sendJson({ n: 2 }), true);
    assert.equal(chat.send('three'), false, 'the queue is full');
    host.accept(ScriptedSocket.last());
    assert.equal(chat.readyState, OPEN);
    assert.deepEqual(host.written(ScriptedSocket.last()), ['one', '{"n":2}']);
    assert.equal(chat.send('now'), true);
    assert.deepEqual(host.written(ScriptedSocket.last()), ['one', '{"n":2}', 'now']);
  });

  test(`${name}: text messages carry their JSON value when they have one`, () => {
    const chat = client();
    const events = record(chat);
    host.accept(ScriptedSocket.last());
    host.deliver(ScriptedSocket.last(), '{"type":"join","user":"bob"}');
    host.deliver(ScriptedSocket.last(), 'plain text');
    const messages = events.filter((e) => e.type === 'message');
    assert.deepEqual(messages[0].json, { type: 'join', user: 'bob' });
    assert.equal(messages[1].data, 'plain text');
    assert.equal(messages[1].json, undefined);
  });

  test(`${name}: an unexpected close reconnects with growing, capped delays and keeps what is sent`, () => {
    const chat = client({ reconnect: { initialDelay: 100, maxDelay: 300, jitter: 0 } });
    const events = record(chat);
    host.accept(ScriptedSocket.last());
    ScriptedSocket.last().drop(1006, '', false);

    const close = events.find((e) => e.type === 'close');
    assert.equal(close.code, 1006);
    assert.equal(close.willReconnect, true);
    assert.equal(chat.readyState, CONNECTING);
    assert.equal(chat.send('while away'), true);

    const delays = [];
    for (let attempt = 1; attempt <= 4; attempt += 1) {
      const reconnecting = events.filter((e) => e.type === 'reconnecting').at(-1);
      assert.equal(reconnecting.attempt, attempt);
      delays.push(reconnecting.delay);
      const before = ScriptedSocket.made.length;
      mock.timers.tick(reconnecting.delay - 1);
      assert.equal(ScriptedSocket.made.length, before, 'no attempt before the delay');
      mock.timers.tick(1);
      assert.equal(ScriptedSocket.made.length, before + 1, 'an attempt after the delay');
      if (attempt < 4) ScriptedSocket.last().drop(1006, '', false); // the handshake fails
    }
    assert.deepEqual(delays, [100, 200, 300, 300]);

    host.accept(ScriptedSocket.last());
    assert.equal(chat.readyState, OPEN);
    assert.deepEqual(host.written(ScriptedSocket.last()), ['while away'], 'the queue is sent on reopen');
  });

  test(`${name}: jitter keeps delays between half the step and the step`, () => {
    const chat = client({ reconnect: { initialDelay: 1000, jitter: 0.5 } });
    const events = record(chat);
    ScriptedSocket.last().drop(1006, '', false);
    const { delay } = events.find((e) => e.type === 'reconnecting');
    assert.ok(delay >= 500 && delay <= 1000, `delay ${delay}`);
  });

  test(`${name}: final close codes and the application range end the connection for good`, () => {
    for (const code of [1000, 1008, 4000, 4999]) {
      assert.equal(isFinalCloseCode(code), true, `${code}`);
      const chat = client();
      const events = record(chat);
      host.accept(ScriptedSocket.last());
      ScriptedSocket.last().drop(code, 'go away');
      const close = events.find((e) => e.type === 'close');
      assert.equal(close.willReconnect, false, `${code}`);
      assert.equal(close.reason, 'go away');
      assert.equal(chat.readyState, CLOSED);
      assert.equal(chat.send('late'), false, 'nothing is queued after a final close');
      assert.equal(events.some((e) => e.type === 'reconnecting'), false);
    }
    for (const code of [1001, 1006, 1011, 1012, 1013, 3000]) {
      assert.equal(isFinalCloseCode(code), false, `${code}`);
    }
  });

  test(`${name}: close() stops reconnecting, even between attempts`, () => {
    const chat = client({ reconnect: { initialDelay: 100, jitter: 0 } });
    const events = record(chat);
    host.accept(ScriptedSocket.last());
    chat.close(4001, 'bye');
    assert.deepEqual(ScriptedSocket.last().closedWith, { code: 4001, reason: 'bye' });
    ScriptedSocket.last().drop(4001, 'bye');
    assert.equal(events.at(-1).willReconnect, false);
    assert.equal(chat.readyState, CLOSED);

    const other = client({ reconnect: { initialDelay: 100, jitter: 0 } });
    const otherEvents = record(other);
    ScriptedSocket.last().drop(1006, '', false);
    const made = ScriptedSocket.made.length;
    other.close();
    assert.equal(otherEvents.at(-1).type, 'close');
    assert.equal(otherEvents.at(-1).willReconnect, false);
    mock.timers.tick(1000);
    assert.equal(ScriptedSocket.made.length, made, 'the scheduled attempt was cancelled');
    assert.equal(other.readyState, CLOSED);
  });

  test(`${name}: attempts stop after maxAttempts, and reconnect: false never reconnects`, () => {
    const chat = client({ reconnect: { initialDelay: 10, jitter: 0, maxAttempts: 2 } });
    const events = record(chat);
    ScriptedSocket.last().drop(1006, '', false);
    mock.timers.tick(10);
    ScriptedSocket.last().drop(1006, '', false);
    mock.timers.tick(20);
    ScriptedSocket.last().drop(1006, '', false);
    const closes = events.filter((e) => e.type === 'close').map((e) => e.willReconnect);
    assert.deepEqual(closes, [true, true, false]);
    assert.equal(chat.readyState, CLOSED);

    const once = client({ reconnect: false });
    const onceEvents = record(once);
    ScriptedSocket.last().drop(1006, '', false);
    assert.equal(onceEvents.at(-1).willReconnect, false);
    assert.equal(once.readyState, CLOSED);
  });
}
