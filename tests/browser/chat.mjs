// End-to-end test of the chat demo (clients/js/demo/chat.html) in a real chromium.
//
//   node tests/browser/chat.mjs http://127.0.0.1:8080 [--out target/browser/chat.png]
//
// The host must serve the `chat` function with `--static clients/js`. Two pages join the same
// room, one sends a message, and both must show it; a screenshot of the two pages side by
// side is saved. When WSFN_ADMIN_URL and WSFN_ADMIN_TOKEN are set, the client's reconnect is
// tested too: the host closes both connections with 3000 (the pages must come back and chat
// again), then with 4000 (an application code: the pages must stay closed).
//
// Exits 0 when every check passed, 1 with the reason otherwise.

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Bounds every wait, so a broken page fails the test instead of hanging it.
const WAIT_MS = 20_000;
const ROOM = 'e2e-room';
const MESSAGE = 'hello from ann ✓ <b>not bold</b>';

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

    const ann = await join(context, args.base, 'ann');
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

    const admin = process.env.WSFN_ADMIN_URL;
    const token = process.env.WSFN_ADMIN_TOKEN;
    if (admin && token) {
      await testReconnect(ann, bob, admin, token);
      console.log('reconnect: ok');
    }
    console.log('chat: ok');
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(`chat.mjs: ${error.stack ?? error}`);
  process.exit(1);
});
