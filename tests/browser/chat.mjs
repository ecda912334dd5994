// End-to-end test of the chat demo (clients/js/demo/chat.html) in a real chromium.
//
//   node tests/browser/chat.mjs http://127.0.0.1:8080 [--out target/browser/chat.png]
//
// The host must serve the `chat` function with `--static clients/js`. Two pages join the same
// room, one sends a message, and both must show it; a screenshot of the two pages side by
// side is saved. One page (ann) is loaded through a proxy that then cuts its WebSocket a few
// times while both pages chat, with lines in flight both ways at each cut: its session resumes
// each time, and both pages must show every line exactly once and in order. When WSFN_ADMIN_URL and WSFN_ADMIN_TOKEN are set, the
// client's reconnect is tested too: the host closes both connections with 3000 (the pages
// must come back and chat again), then with 4000 (an application code: the pages must stay
// closed).
//
// Exits 0 when every check passed, 1 with the reason otherwise.

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

import { CuttingProxy } from './cutting-proxy.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Bounds every wait, so a broken page fails the test instead of hanging it.
const WAIT_MS = 20_000;
const ROOM = 'e2e-room';
const MESSAGE = 'hello from ann ✓ <b>not bold</b>';
/** Cuts of ann's WebSocket: the client's backoff grows with each, as after any drop. */
const CUTS = 4;

function parseArgs(argv) {
  const args = { base: undefined, out: undefined };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--out') args.out = argv[++i];
    else if (!args.base) args.base = argv[i];
    else throw new Error(`unexpected argument ${argv[i]}`);
  }
  if (!args.base) throw new Error('usage: chat.mjs BASE_URL [--out FILE.png]');
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  args.out = resolve(args.out ?? `${repo}/target/browser/chat.png`);
  args.base = args.base.replace(/\/+$/, '');
  return args;
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Opens the demo in a new page and joins ROOM as `user`; resolves once connected. */
async function join(context, base, user) {
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error(`[${user}] page error: ${error.message}`));
  page.on('console', (line) => {
    if (line.type() === 'error') console.error(`[${user}] console: ${line.text()}`);
  });
  const response = await page.goto(`${base}/demo/chat.html`);
  check(response?.ok(), `the demo page answered ${response?.status()}`);
  await page.fill('#user', user);
  await page.fill('#room', ROOM);
  await page.click('#join-button');
  await page.waitForSelector('#status[data-state="open"]');
  check(!(await page.isVisible('#join')), `${user}'s page still offers to join after joining`);
  return page;
}

/** Waits until the page lists a line with exactly this text. */
async function expectLine(page, selector, text, who) {
  try {
    await page.locator(selector, { hasText: text }).first().waitFor();
  } catch (error) {
    const lines = await page.locator('#messages li').allInnerTexts();
    throw new Error(`${who} never showed ${JSON.stringify(text)}; it shows ${JSON.stringify(lines)}`);
  }
}

async function sendFrom(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
}

/** Both pages side by side with a caption, as one image. */
async function composeScreenshot(context, shots, out) {
  const page = await context.newPage();
  const cells = shots
    .map(
      ({ label, png }) =>
        `<figure><figcaption>${label}</figcaption>` +
        `<img src="data:image/png;base64,${png.toString('base64')}"></figure>`,
    )
    .join('');
  await page.setViewportSize({ width: 1320, height: 600 });
  await page.setContent(
    `<!doctype html><style>
      body { margin: 0; padding: 12px; display: flex; gap: 12px; background: #d9dde6;
             font: 14px system-ui, sans-serif; }
      figure { margin: 0; background: white; border: 1px solid #889; }
      figcaption { padding: 4px 8px; background: #334; color: white; }
      img { display: block; }
    </style>${cells}`,
  );
  await page.waitForFunction(() => [...document.images].every((image) => image.complete));
  await mkdir(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  await page.close();
}

/** Closes every connection of the chat function through the admin API. */
async function closeAllChats(admin, token, code, reason) {
  const headers = { authorization: `Bearer ${token}` };
  const listed = await fetch(`${admin}/v1/functions/chat/connections`, { headers });
  check(listed.ok, `listing connections answered ${listed.status}`);
  const connections = await listed.json();
  check(connections.length === 2, `expected 2 chat connections, the host has ${connections.length}`);
  for (const { id } of connections) {
    const query = new URLSearchParams({ code: String(code), reason });
    const closed = await fetch(`${admin}/v1/connections/${id}?${query}`, { method: 'DELETE', headers });
    check(closed.ok, `closing connection ${id} answered ${closed.status}`);
  }
}

/** The chat lines a page shows, as [user, text] pairs, in order. */
async function chatLines(page) {
  return page.$$eval('#messages li.message', (items) =>
    items.map((item) => [item.querySelector('.user')?.textContent.replace(/:$/, ''), item.lastChild.textContent]),
  );
}

/** Fails unless `page` shows `who 1` .. `who count`, then `who end`, each once and in order. */
async function expectEveryLine(page, who, count, where) {
  const pattern = new RegExp(`^${who} (\\d+|end)$`);
  const lines = (await chatLines(page)).filter(([user, text]) => user === who && pattern.test(text)).map(([, text]) => text);
  const expected = Array.from({ length: count }, (_, i) => `${who} ${i + 1}`).concat(`${who} end`);
  check(
    JSON.stringify(lines) === JSON.stringify(expected),
    `${where} should show ${expected.length} lines of ${who} once each, in order; it shows ${JSON.stringify(lines)}`,
  );
}

/** Waits until ann's page is connected on a connection the proxy has not cut. */
async function annConnected(ann, proxy) {
  // One connection open at the proxy means ann's page saw every cut and opened another.
  const deadline = Date.now() + WAIT_MS;
  while (proxy.openConnections !== 1) {
    check(Date.now() < deadline, `the proxy has ${proxy.openConnections} connections open for ann`);
    await sleep(10);
  }
  await ann.waitForSelector('#status[data-state="open"]');
}

/**
 * Cuts ann's connection CUTS times. Before each cut it goes dark while both pages send a
 * line, so that a line from each side is in flight when the socket dies; more lines are
 * sent while ann is away. Both pages must then show every line once, in order.
 */
async function testDrops(ann, bob, proxy) {
  let sent = 0;
  const sendBoth = async () => {
    sent += 1;
    await sendFrom(ann, `ann ${sent}`);
    await sendFrom(bob, `bob ${sent}`);
  };
  for (let cut = 1; cut <= CUTS; cut += 1) {
    await annConnected(ann, proxy);
    await sendBoth();
    proxy.darkenAll();
    await sendBoth();
    proxy.cutAll();
    await sendBoth();
  }
  await sendFrom(ann, 'ann end');
  await sendFrom(bob, 'bob end');
  for (const [page, who] of [
    [ann, 'ann'],
    [bob, 'bob'],
  ]) {
    await expectLine(page, '#messages li.message', 'ann end', who);
    await expectLine(page, '#messages li.message', 'bob end', who);
    await expectEveryLine(page, 'ann', sent, `${who}'s page`);
    await expectEveryLine(page, 'bob', sent, `${who}'s page`);
    const notices = await page.locator('#messages li.notice').allInnerTexts();
    check(!notices.some((text) => /lost|resumed/.test(text)), `${who}'s page noticed a drop: ${JSON.stringify(notices)}`);
  }
  await annConnected(ann, proxy);
  const status = await ann.textContent('#status');
  check(status.includes('resumed'), `ann's status should say the session resumed, it reads ${status}`);
  console.log(`drops: ${sent} lines from each page, ${proxy.cuts} cuts; ann: ${status}`);
}

async function testReconnect(ann, bob, admin, token) {
  // 3000-3999 are not final codes: both clients must come back and rejoin the room.
  await closeAllChats(admin, token, 3000, 'restarting');
  for (const [page, who] of [
    [ann, 'ann'],
    [bob, 'bob'],
  ]) {
    await expectLine(page, '#messages li.notice', 'connection lost (3000)', who);
    await page.waitForSelector('#status[data-state="open"]');
  }
  await sendFrom(bob, 'back again');
  await expectLine(ann, '#messages li.message', 'back again', 'ann after reconnecting');
  await expectLine(bob, '#messages li.message', 'back again', 'bob after reconnecting');

  // 4000-4999 are the function's own codes, used to dismiss a client: no reconnect.
  await closeAllChats(admin, token, 4000, 'dismissed');
  for (const [page, who] of [
    [ann, 'ann'],
    [bob, 'bob'],
  ]) {
    await page.waitForSelector('#status[data-state="closed"]');
    const status = await page.textContent('#status');
    check(status.includes('4000') && status.includes('dismissed'), `${who}'s status reads ${status}`);
    check(await page.isVisible('#join'), `${who} should offer to join again`);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  // ann's page, and so its WebSocket, goes through the proxy; only WebSockets are ever cut.
  const proxy = new CuttingProxy(new URL(args.base), { onlyUpgrades: true });
  await proxy.listen();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 640, height: 560 } });
    context.setDefaultTimeout(WAIT_MS);

    // The client script itself is served with a JavaScript type, as module imports require.
    const client = await context.request.get(`${args.base}/wsfn.js`);
    check(client.ok(), `/wsfn.js answered ${client.status()}`);
    check(
      client.headers()['content-type']?.startsWith('text/javascript'),
      `/wsfn.js has Content-Type ${client.headers()['content-type']}`,
    );

    const ann = await join(context, proxy.url, 'ann');
    const bob = await join(context, args.base, 'bob');
    await expectLine(ann, '#messages li.notice', 'bob joined', 'ann');

    await sendFrom(ann, MESSAGE);
    await expectLine(bob, '#messages li.message', MESSAGE, 'bob');
    await expectLine(ann, '#messages li.message', MESSAGE, 'ann');
    const bold = await bob.locator('#messages b').count();
    check(bold === 0, 'message text must be shown as text, not markup');

    const shots = [
      { label: 'ann — sender', png: await ann.screenshot() },
      { label: 'bob — same room', png: await bob.screenshot() },
    ];
    await composeScreenshot(context, shots, args.out);
    await writeFile(args.out.replace(/\.png$/, '-ann.png'), shots[0].png);
    await writeFile(args.out.replace(/\.png$/, '-bob.png'), shots[1].png);
    console.log(`screenshot: ${args.out}`);

    await testDrops(ann, bob, proxy);
    console.log('drops: ok');

    const admin = process.env.WSFN_ADMIN_URL;
    const token = process.env.WSFN_ADMIN_TOKEN;
    if (admin && token) {
      await testReconnect(ann, bob, admin, token);
      console.log('reconnect: ok');
    }
    console.log('chat: ok');
  } finally {
    await browser.close();
    await proxy.close();
  }
}

main().catch((error) => {
  console.error(`chat.mjs: ${error.stack ?? error}`);
  process.exit(1);
});
