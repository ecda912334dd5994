// End-to-end tests of the client's resumable sessions in node, against a real host serving
// the `chat` sample, with the client's connections going through a proxy that cuts them.
//
//   node tests/browser/sessions.mjs SCENARIO http://127.0.0.1:8080
//
// Scenarios:
//   drops     the proxy cuts the client's connections every 50-500 ms while the client and an
//             observer (a plain WebSocket straight to the host) chat: every line arrives exactly
//             once and in order on both, on-connect ran once for the client's connection and
//             on-close once, after the client closed. Needs WSFN_ADMIN_URL and WSFN_ADMIN_TOKEN
//             (the function's live log shows its on-connect and on-close).
//   expired   the host runs with a short --resume-window; the client stays away past it and is
//             told `reset`, then starts a new connection.
//   overflow  the host runs with a small --session-retention; the room says more than that while
//             the client is away, the session ends, and the client is told `reset`.
//
// Exits 0 with "SCENARIO: ok" when every check passed, 1 with the reason otherwise.

import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';

import { CLOSED, OPEN, connect } from '../../clients/js/wsfn.js';
import { CuttingProxy } from './cutting-proxy.mjs';

// Bounds every wait, so a lost message fails the test instead of hanging it.
const WAIT_MS = 60_000;
const ROOM = 'sessions';
/** Lines each side sends in `drops`, at least. */
const LINES = 200;
/** Resumes the client must have made before `drops` stops sending. */
const RESUMES = 5;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Waits until `predicate()` holds, checking every few milliseconds. */
async function until(what, predicate) {
  const deadline = Date.now() + WAIT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

/** A chat member on a plain WebSocket straight to the host: the reference the client is held to. */
class Observer {
  static async join(base, user) {
    const observer = new Observer();
    const url = `${base.replace(/^http/, 'ws')}/chat?room=${ROOM}&user=${user}`;
    observer.socket = new WebSocket(url);
    observer.socket.on('message', (data) => observer.events.push(JSON.parse(String(data))));
    await new Promise((resolve, reject) => {
      observer.socket.once('open', resolve);
      observer.socket.once('error', reject);
    });
    return observer;
  }

  constructor() {
    /** Every chat event received, in order. */
    this.events = [];
  }

  send(text) {
    this.socket.send(text);
  }

  count(type, user) {
    return this.events.filter((event) => event.type === type && event.user === user).length;
  }

  /** The texts `user` said, in the order they arrived. */
  linesOf(user) {
    return this.events.filter((event) => event.type === 'message' && event.user === user).map((e) => e.text);
  }

  close() {
    this.socket.close(1000);
  }
}

/** The client under test, through `proxy`, with every event it emits recorded. */
function joinThrough(proxy, user) {
  const client = connect(`${proxy.url}/chat`, {
    query: { room: ROOM, user },
    WebSocket,
    // Short pauses: the proxy cuts far more often than any network, and the test waits for each.
    reconnect: { initialDelay: 20, maxDelay: 200 },
    queueLimit: 100_000,
  });
  client.events = [];
  for (const type of ['open', 'message', 'close', 'reconnecting', 'resumed', 'reset']) {
    client.addEventListener(type, (event) => client.events.push(event));
  }
  client.linesOf = (who) =>
    client.events.filter((e) => e.type === 'message' && e.json?.type === 'message' && e.json.user === who).map((e) => e.json.text);
  client.count = (type) => client.events.filter((event) => event.type === type).length;
  return client;
}

/** Fails unless `lines` is exactly `prefix 1` .. `prefix count`, then `prefix end`. */
function checkLines(lines, prefix, count, where) {
  const expected = Array.from({ length: count }, (_, i) => `${prefix} ${i + 1}`).concat(`${prefix} end`);
  if (lines.length === expected.length && lines.every((line, i) => line === expected[i])) return;
  const firstWrong = lines.findIndex((line, i) => line !== expected[i]);
  throw new Error(
    `${where}: ${lines.length} lines from ${prefix}, expected ${expected.length} in order; ` +
      `first difference at ${firstWrong}: ${JSON.stringify(lines.slice(Math.max(0, firstWrong - 2), firstWrong + 3))}`,
  );
}

/** Follows the function's live log (on-connect and on-close lines) through the admin API. */
async function followLog(admin, token) {
  const response = await fetch(`${admin}/v1/functions/chat/logs`, {
    headers: { authorization: `Bearer ${token}` },
  });
  check(response.ok, `the log stream answered ${response.status}`);
  const lines = [];
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      pending += decoder.decode(value, { stream: true });
      const complete = pending.split('\n');
      pending = complete.pop();
      for (const line of complete) if (line.trim()) lines.push(JSON.parse(line));
    }
  })().catch(() => {});
  return { lines, stop: () => reader.cancel().catch(() => {}) };
}

async function drops(base, proxy) {
  const admin = process.env.WSFN_ADMIN_URL;
  const token = process.env.WSFN_ADMIN_TOKEN;
  check(admin && token, 'drops needs WSFN_ADMIN_URL and WSFN_ADMIN_TOKEN');
  const log = await followLog(admin, token);
  const observer = await Observer.join(base, 'obs');
  const client = joinThrough(proxy, 'js');
  await until('the client opened', () => client.readyState === OPEN);
  const id = client.connectionId;
  check(/^[0-9a-f]{32}$/.test(id), `the session's connection id is ${id}`);
  await until('the observer saw the client join', () => observer.count('join', 'js') === 1);

  // Each cut connection first goes dark for up to 300 ms, as a dead network does: both sides
  // then have messages in flight that only the session brings back.
  proxy.startCutting({ min: 50, max: 500, dark: 300 });
  let sent = 0;
  while (sent < LINES || client.count('resumed') < RESUMES) {
    sent += 1;
    check(client.send(`js ${sent}`), `the client refused line ${sent}`);
    observer.send(`obs ${sent}`);
    await sleep(10);
  }
  client.send('js end');
  observer.send('obs end');
  for (const [who, lines] of [
    ['the observer', () => observer.linesOf('js')],
    ['the observer', () => observer.linesOf('obs')],
    ['the client', () => client.linesOf('js')],
    ['the client', () => client.linesOf('obs')],
  ]) {
    await until(`${who} has every line`, () => lines().at(-1)?.endsWith(' end'));
  }
  checkLines(observer.linesOf('js'), 'js', sent, 'the observer');
  checkLines(observer.linesOf('obs'), 'obs', sent, 'the observer');
  checkLines(client.linesOf('js'), 'js', sent, 'the client');
  checkLines(client.linesOf('obs'), 'obs', sent, 'the client');
  check(client.count('reset') === 0, `the client reset ${client.count('reset')} times`);
  check(client.count('open') === 1, `the client opened ${client.count('open')} times`);
  check(proxy.cuts >= RESUMES, `the proxy cut ${proxy.cuts} times`);
  console.log(`drops: ${sent} lines each way, ${proxy.cuts} cuts, ${client.count('resumed')} resumes`);

  await proxy.stopCutting();
  // One connection open at the proxy means the client saw every cut and opened another.
  await until('the client is connected for good', () => proxy.openConnections === 1 && client.readyState === OPEN);
  const ofClient = (kind) => log.lines.filter((line) => line.kind === kind && line.connection === id);
  check(ofClient('close').length === 0, `on-close ran before the client closed: ${JSON.stringify(ofClient('close'))}`);
  client.close(1000, 'done');
  await until('the client closed', () => client.readyState === CLOSED);
  await until('the observer saw the client leave', () => observer.count('leave', 'js') === 1);
  await until("the log shows the client's on-close", () => ofClient('close').length === 1);
  // A last round trip, so that anything still on its way arrives before the counts are read.
  observer.send('obs last');
  await until('the observer got its last line', () => observer.linesOf('obs').at(-1) === 'obs last');
  check(ofClient('connect').length === 1, `on-connect ran ${ofClient('connect').length} times`);
  check(ofClient('close').length === 1, `on-close ran ${ofClient('close').length} times`);
  check(ofClient('close')[0].code === 1000, `on-close was told ${JSON.stringify(ofClient('close')[0])}`);
  check(observer.count('join', 'js') === 1, `the room saw ${observer.count('join', 'js')} joins`);
  check(observer.count('leave', 'js') === 1, `the room saw ${observer.count('leave', 'js')} leaves`);
  log.stop();
  observer.close();
}

/**
 * Takes the client away (its socket cut, its attempts refused) until `whileAway` has made
 * the host end its session, then lets it back: the resume must be refused and reported.
 */
async function resetAfter(base, proxy, whileAway) {
  const observer = await Observer.join(base, 'obs');
  const client = joinThrough(proxy, 'js');
  await until('the client opened', () => client.readyState === OPEN);
  await until('the observer saw the client join', () => observer.count('join', 'js') === 1);
  client.send('before');
  await until('the observer got the line', () => observer.linesOf('js').includes('before'));

  proxy.refuse(true);
  proxy.cutAll();
  await until('the client saw its socket go', () => client.count('close') === 1);
  const lost = client.events.find((event) => event.type === 'close');
  check(lost.willResume, `the cut was not taken for a lost socket: ${lost.code}`);
  await whileAway(observer);
  await until('the host ended the session (the room saw a leave)', () => observer.count('leave', 'js') === 1);
  proxy.refuse(false);

  await until('the client reset', () => client.count('reset') === 1);
  const reset = client.events.find((event) => event.type === 'reset');
  check(reset.reason === 'unknown', `the resume was refused for ${JSON.stringify(reset.reason)}`);
  await until('the client opened again', () => client.count('open') === 2);
  check(client.count('resumed') === 0, 'the client resumed a session the host had ended');
  const order = client.events.map((event) => event.type).filter((type) => type !== 'message');
  const resetAt = order.indexOf('reset');
  check(order.indexOf('open', resetAt) > resetAt, `events out of order: ${order.join(', ')}`);
  await until('the observer saw the client join again', () => observer.count('join', 'js') === 2);
  client.send('after');
  await until('the observer got the line sent after the reset', () => observer.linesOf('js').includes('after'));
  client.close();
  observer.close();
}

async function expired(base, proxy) {
  // Nothing to do but stay away: the host's --resume-window passes.
  await resetAfter(base, proxy, async () => {});
}

async function overflow(base, proxy) {
  // The room says more than --session-retention while the client is away.
  await resetAfter(base, proxy, async (observer) => {
    for (let n = 0; n < 16; n += 1) observer.send(`${n} ${'x'.repeat(500)}`);
  });
}

/**
 * Takes the client away, has `tamper` change what it will resume with, and lets it back: the
 * resume must be refused for `reason` and reported as a reset, while the host keeps the old
 * session untouched until its window passes (one leave, from its one on-close). `back` checks
 * the new session the client started.
 */
async function refusedWhileKept(base, proxy, reason, tamper, back) {
  const observer = await Observer.join(base, 'obs');
  const client = joinThrough(proxy, 'js');
  await until('the client opened', () => client.readyState === OPEN);
  await until('the observer saw the client join', () => observer.count('join', 'js') === 1);
  const oldId = client.connectionId;

  proxy.refuse(true);
  proxy.cutAll();
  await until('the client saw its socket go', () => client.count('close') === 1);
  tamper(client);
  proxy.refuse(false);

  await until('the client reset', () => client.count('reset') === 1);
  const reset = client.events.find((event) => event.type === 'reset');
  check(reset.reason === reason, `the resume was refused for ${JSON.stringify(reset.reason)}, expected ${reason}`);
  await until('the client opened again', () => client.count('open') === 2);
  check(client.count('resumed') === 0, 'the client resumed with what should have been refused');
  check(client.connectionId !== oldId, 'the new session kept the old connection id');
  await back(client, observer);
  // The refused resume left the old session alone: it ends when its window passes.
  await until("the old session's on-close (its leave)", () => observer.count('leave', 'js') >= 1);
  client.close();
  // A last round trip, so that a second on-close of the old session would have shown by now.
  observer.send('obs last');
  await until('the observer got its last line', () => observer.linesOf('obs').at(-1) === 'obs last');
  const expectedLeaves = reason === 'function' ? 1 : 2;
  await until('every session left the room', () => observer.count('leave', 'js') >= expectedLeaves);
  check(
    observer.count('leave', 'js') === expectedLeaves,
    `the room saw ${observer.count('leave', 'js')} leaves of js, expected ${expectedLeaves}`,
  );
  observer.close();
}

async function forged(base, proxy) {
  await refusedWhileKept(
    base,
    proxy,
    'secret',
    (client) => {
      client._session.secret = 'f'.repeat(client._session.secret.length);
    },
    async (client, observer) => {
      await until('the observer saw the client join again', () => observer.count('join', 'js') === 2);
      client.send('after');
      await until('the observer got the line sent after the reset', () => observer.linesOf('js').includes('after'));
    },
  );
}

async function elsewhere(base, proxy) {
  await refusedWhileKept(
    base,
    proxy,
    'function',
    (client) => {
      // The same session id and secret, presented to the echo function.
      client.url = client.url.replace('/chat?', '/echo?');
    },
    async (client) => {
      client.send('after');
      await until('the echo function answered the new session', () =>
        client.events.some((event) => event.type === 'message' && event.data === 'after'),
      );
    },
  );
}

const SCENARIOS = { drops, expired, overflow, forged, elsewhere };

async function main() {
  const [scenario, base] = process.argv.slice(2);
  check(SCENARIOS[scenario] && base, `usage: sessions.mjs ${Object.keys(SCENARIOS).join('|')} BASE_URL`);
  const proxy = new CuttingProxy(new URL(base));
  await proxy.listen();
  try {
    await SCENARIOS[scenario](base.replace(/\/+$/, ''), proxy);
  } finally {
    await proxy.close();
  }
  console.log(`${scenario}: ok`);
}

main().catch((error) => {
  console.error(`sessions.mjs: ${error.stack ?? error}`);
  process.exit(1);
});
