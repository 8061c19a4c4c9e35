// End-to-end test of the chat page in a real browser (Debian's chromium,
// driven by playwright-core), the way a person uses it.
//
//   WEB_URL='http://127.0.0.1:3001/?gate=127.0.0.1:3014' node web-server/e2e/chat.e2e.mjs
//
// Environment:
//   WEB_URL         page URL including ?gate=HOST:PORT (required)
//   E2E_CONNECTORS  number of connectors behind the gate (default 2); used to
//                   pick two names that hash to different connectors
//   E2E_TIMEOUT_MS  overall watchdog (default 120000)
//   CHROMIUM        browser executable (default /usr/bin/chromium)
//   E2E_ARTIFACTS   screenshot folder (default web-server/e2e/artifacts)
//   E2E_TLS_CERT    optional PEM certificate the frontends serve wss:// with:
//                   Chromium trusts exactly it (its SPKI hash), and the run
//                   checks that the page's sockets are wss://
//   E2E_ONLY_CHAT   when set, stop after the public and private messages
//   E2E_SERVER_LOSS_CMD  optional shell command that takes the chat servers
//                   down (e.g. kills the connectors); when set, the test runs
//                   it at the end and checks that the page returns to the
//                   login screen with a notice
//
// Story: users A and B (two browser contexts, B at phone width) join one room
// through different connectors; a third user C first tries A's name (must be
// refused as taken), then joins under its own name. A talks to everyone; B
// whispers to A (C must not see it); B leaves (closes the page) and the
// others see it go; C leaves with the button. Screenshots land in the
// artifacts folder.
// Exit code 0 = passed; anything else prints "E2E FAILED: <step>: <why>".

import { execSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const WEB_URL = process.env.WEB_URL;
const CONNECTORS = Number(process.env.E2E_CONNECTORS || 2);
const WATCHDOG_MS = Number(process.env.E2E_TIMEOUT_MS || 120000);
const STEP_TIMEOUT_MS = 10000;
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.E2E_ARTIFACTS || join(HERE, 'artifacts');
const SERVER_LOSS_CMD = process.env.E2E_SERVER_LOSS_CMD || '';
const TLS_CERT = process.env.E2E_TLS_CERT || '';
const ONLY_CHAT = Boolean(process.env.E2E_ONLY_CHAT);

/** Chromium's flag that trusts one certificate by its public key's SHA-256. */
function trustFlag(pemPath) {
  const spki = new X509Certificate(readFileSync(pemPath)).publicKey.export({ type: 'spki', format: 'der' });
  return `--ignore-certificate-errors-spki-list=${createHash('sha256').update(spki).digest('base64')}`;
}

const CHROMIUM_ARGS = [
  ...(TLS_CERT ? [trustFlag(TLS_CERT)] : []),
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let currentStep = 'start';
function step(name) {
  currentStep = name;
  console.log(`e2e: ${name}`);
}

class E2EError extends Error {}
function check(condition, message) {
  if (!condition) throw new E2EError(message);
}

// ---------------------------------------------------------------------------
// Which connector a name lands on: the gate picks
// connectors[|crc32(name)| mod n] (shared/pomelo-protocol.md §6.2: CRC-32 of
// the low byte of each UTF-16 code unit, as a signed 32-bit integer).
// ---------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[i] = c;
  }
  return table;
})();

export function pomeloCrc32(str) {
  let crc = -1;
  for (let i = 0; i < str.length; i++) {
    crc = CRC_TABLE[(crc ^ str.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ -1) | 0;
}

export function connectorIndex(name, n) {
  return Math.abs(pomeloCrc32(name)) % n;
}

/** First name of `candidates` on connector `index`, not in `exclude`. */
function nameOn(index, candidates, exclude = []) {
  const name = candidates.find((c) => !exclude.includes(c) && connectorIndex(c, CONNECTORS) === index);
  check(name, `no candidate name hashes to connector ${index} of ${CONNECTORS}`);
  return name;
}

// ---------------------------------------------------------------------------
// Page helpers (every wait has a timeout)
// ---------------------------------------------------------------------------

async function openPage(context, label, errors, url = WEB_URL) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('pageerror', (err) => errors.push(`${label}: page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${label}: console error: ${msg.text()}`);
  });
  await page.goto(url, { timeout: STEP_TIMEOUT_MS });
  await page.locator('body[data-ready="true"]').waitFor({ timeout: STEP_TIMEOUT_MS });
  return page;
}

async function login(page, name, room) {
  await page.getByTestId('login-name').fill(name);
  await page.getByTestId('login-room').fill(room);
  await page.getByTestId('login-submit').click();
}

async function loginAndEnter(page, name, room) {
  await login(page, name, room);
  try {
    await page.getByTestId('chat-screen').waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    const shown = (await page.getByTestId('login-error').textContent().catch(() => '')) || '(no error shown)';
    throw new E2EError(`${name} did not get into room ${room} within ${STEP_TIMEOUT_MS} ms; the page says: ${shown}`);
  }
  const self = await page.getByTestId('self-name').textContent();
  check(self === name, `after login the page shows user "${self}", expected "${name}"`);
}

async function members(page) {
  return page.getByTestId('members').locator('[data-testid="member"]').evaluateAll((els) =>
    els.map((e) => e.dataset.name).sort(),
  );
}

async function waitForMembers(page, expected, who) {
  const want = [...expected].sort();
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let got = [];
  while (Date.now() < deadline) {
    got = await members(page);
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    await page.waitForTimeout(100);
  }
  throw new E2EError(`${who} sees members ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

/** The message bubble with this exact text, waited for. */
async function waitForMessage(page, text, who) {
  const bubble = page.getByTestId('message').filter({
    has: page.getByTestId('message-text').getByText(text, { exact: true }),
  });
  try {
    await bubble.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new E2EError(`${who} did not see the message "${text}" within ${STEP_TIMEOUT_MS} ms`);
  }
  check((await bubble.count()) === 1, `${who} sees "${text}" ${await bubble.count()} times, expected once`);
  return bubble.first();
}

async function messageCount(page, text) {
  return page
    .getByTestId('message')
    .filter({ has: page.getByTestId('message-text').getByText(text, { exact: true }) })
    .count();
}

async function send(page, target, text) {
  await page.getByTestId('target').selectOption(target);
  await page.getByTestId('message-input').fill(text);
  await page.getByTestId('message-input').press('Enter');
}

async function expectAttrs(bubble, attrs, what) {
  for (const [name, value] of Object.entries(attrs)) {
    const got = await bubble.getAttribute(name);
    check(got === value, `${what}: ${name} is ${JSON.stringify(got)}, expected ${JSON.stringify(value)}`);
  }
}

async function screenshot(page, file) {
  const path = join(ARTIFACTS, file);
  await page.screenshot({ path, fullPage: true, timeout: STEP_TIMEOUT_MS });
  console.log(`e2e: screenshot ${path}`);
}

// ---------------------------------------------------------------------------
// The story
// ---------------------------------------------------------------------------

async function run(browser, errors) {
  const candidates = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'oscar'];
  const userA = nameOn(0, candidates);
  const userB = nameOn(CONNECTORS > 1 ? 1 : 0, candidates, [userA]);
  const userC = nameOn(0, candidates, [userA, userB]);
  const room = `room_${Date.now().toString(36)}`;
  console.log(`e2e: users ${userA} (connector #0), ${userB} (connector #${connectorIndex(userB, CONNECTORS)}), ${userC} (connector #0); room ${room}`);

  const desktop = { viewport: { width: 1000, height: 700 } };
  const phone = { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 };
  const ctxA = await browser.newContext(desktop);
  const ctxB = await browser.newContext(phone);
  const ctxC = await browser.newContext(desktop);
  if (TLS_CERT) {
    // Records every socket URL the page opens (a subclass keeps the
    // constructor's constants), so the run can check they are wss://.
    await ctxA.addInitScript(() => {
      const Native = window.WebSocket;
      window.__socketUrls = [];
      window.WebSocket = class extends Native {
        constructor(url, protocols) {
          super(url, protocols);
          window.__socketUrls.push(String(url));
        }
      };
    });
  }

  step('open the page');
  const pageA = await openPage(ctxA, userA, errors);
  await screenshot(pageA, 'login.png');

  step('invalid names are refused before connecting');
  await login(pageA, 'no spaces!', room);
  await pageA.getByTestId('login-error').waitFor({ state: 'visible' });
  check(await pageA.getByTestId('login-screen').isVisible(), 'an invalid name left the login screen');
  await login(pageA, userA, 'bad-room');
  const roomError = await pageA.getByTestId('login-error').textContent();
  check(/Room/.test(roomError), `room "bad-room" gave "${roomError}", expected a room error`);
  check(await pageA.getByTestId('login-screen').isVisible(), 'an invalid room left the login screen');

  step('a ?gate= the web server does not list is refused');
  const elsewhere = new URL(WEB_URL);
  elsewhere.searchParams.set('gate', '127.0.0.1:1');
  const pageX = await openPage(ctxC, 'unlisted gate', errors, elsewhere.href);
  const gateText = await pageX.getByTestId('gate-address').textContent();
  check(/127\.0\.0\.1:1 is not one of this site's gates/.test(gateText), `unlisted gate shows "${gateText}"`);
  await login(pageX, userA, room);
  await pageX.getByTestId('login-error').waitFor({ state: 'visible' });
  const gateError = await pageX.getByTestId('login-error').textContent();
  check(/not one of this site's gates/.test(gateError), `login through an unlisted gate gave "${gateError}"`);
  check(await pageX.getByTestId('login-screen').isVisible(), 'an unlisted gate left the login screen');
  await pageX.close();

  step(`${userA} logs in`);
  await loginAndEnter(pageA, userA, room);
  await waitForMembers(pageA, [userA], userA);

  step(`${userB} logs in (phone-width browser)`);
  const pageB = await openPage(ctxB, userB, errors);
  await screenshot(pageB, 'login-phone.png');
  await loginAndEnter(pageB, userB, room);
  await waitForMembers(pageB, [userA, userB], userB);
  await waitForMembers(pageA, [userA, userB], `${userA} (after onAdd)`);
  const connA = await pageA.getByTestId('connection').getAttribute('data-connector');
  const connB = await pageB.getByTestId('connection').getAttribute('data-connector');
  console.log(`e2e: ${userA} on ${connA}, ${userB} on ${connB}`);
  check(connA && connB && (CONNECTORS < 2 || connA !== connB), `${userA} (${connA}) and ${userB} (${connB}) should be on different connectors`);

  step(`a third user trying the name ${userA} is refused`);
  const pageC = await openPage(ctxC, userC, errors);
  await login(pageC, userA, room);
  const dupError = pageC.getByTestId('login-error');
  await dupError.waitFor({ state: 'visible' });
  const dupText = await dupError.textContent();
  check(/taken in this room/.test(dupText), `duplicate name gave "${dupText}", expected "taken in this room"`);
  check(await pageC.getByTestId('login-screen').isVisible(), 'duplicate name left the login screen');

  step(`the third user joins as ${userC}`);
  await loginAndEnter(pageC, userC, room);
  await waitForMembers(pageC, [userA, userB, userC], userC);
  await waitForMembers(pageA, [userA, userB, userC], userA);
  await waitForMembers(pageB, [userA, userB, userC], userB);

  step(`${userA} sends a public message`);
  const publicText = `hello everyone from ${userA} 你好 😀`;
  await send(pageA, '*', publicText);
  for (const [page, who] of [[pageA, userA], [pageB, userB], [pageC, userC]]) {
    const bubble = await waitForMessage(page, publicText, who);
    await expectAttrs(bubble, { 'data-from': userA, 'data-target': '*', 'data-private': 'false' }, `public message at ${who}`);
    check((await bubble.getByTestId('private-badge').count()) === 0, `public message at ${who} is marked private`);
  }

  step(`${userB} sends a private message to ${userA}`);
  const privateText = `psst ${userA}, only for you`;
  await send(pageB, userA, privateText);
  const atAlice = await waitForMessage(pageA, privateText, userA);
  await expectAttrs(atAlice, { 'data-from': userB, 'data-target': userA, 'data-private': 'true' }, `private message at ${userA}`);
  check(await atAlice.getByTestId('private-badge').isVisible(), `private message at ${userA} has no visible private badge`);
  const echo = await waitForMessage(pageB, privateText, `${userB} (local echo)`);
  await expectAttrs(echo, { 'data-private': 'true', 'data-target': userA }, `private echo at ${userB}`);
  check(await echo.getByTestId('private-badge').isVisible(), `private echo at ${userB} has no visible private badge`);
  // The userC must not get it. Ordering barrier: a public message sent by
  // userB after the private one, through the same connector and chat server.
  const barrier = `${userB} says hi to the room`;
  await send(pageB, '*', barrier);
  await waitForMessage(pageC, barrier, userC);
  await waitForMessage(pageA, barrier, userA);
  check((await messageCount(pageC, privateText)) === 0, `${userC} saw the private message meant for ${userA}`);

  if (TLS_CERT) {
    step('the page talks to the gate and the connectors over wss://');
    const urls = await pageA.evaluate(() => window.__socketUrls);
    check(urls.length >= 2, `expected the gate's and a connector's sockets, saw: ${urls.join(', ')}`);
    check(urls.every((u) => u.startsWith('wss://')), `a socket was not wss://: ${urls.join(', ')}`);
    await screenshot(pageA, 'chat-wss.png');
  }
  if (ONLY_CHAT) {
    check(errors.length === 0, `browser errors:\n  ${errors.join('\n  ')}`);
    await Promise.all([ctxA.close(), ctxB.close(), ctxC.close()]);
    return;
  }

  step('screenshots of the chat (desktop and phone width)');
  await screenshot(pageA, 'chat-desktop.png');
  await screenshot(pageB, 'chat-phone.png');

  step(`${userB} leaves (closes the page) and the others see it`);
  await pageB.close();
  await waitForMembers(pageA, [userA, userC], `${userA} (after onLeave)`);
  await waitForMembers(pageC, [userA, userC], `${userC} (after onLeave)`);
  await pageA
    .getByTestId('system-message')
    .getByText(`${userB} left.`, { exact: true })
    .waitFor({ state: 'visible' })
    .catch(() => {
      throw new E2EError(`${userA} shows no "${userB} left." notice`);
    });
  const targets = await pageA.getByTestId('target').locator('option').evaluateAll((os) => os.map((o) => o.value));
  check(!targets.includes(userB), `${userB} is still a private-message target for ${userA}`);

  step(`${userC} leaves with the Leave button`);
  await pageC.getByTestId('leave').click();
  await pageC.getByTestId('login-screen').waitFor({ state: 'visible' });
  await waitForMembers(pageA, [userA], `${userA} (after ${userC} left)`);
  await screenshot(pageA, 'chat-after-leave.png');

  if (SERVER_LOSS_CMD) {
    step(`the server goes away (${SERVER_LOSS_CMD}); ${userA} is sent back to the login screen`);
    execSync(SERVER_LOSS_CMD, { stdio: 'inherit', timeout: STEP_TIMEOUT_MS });
    // Closed sockets (or a kick on shutdown) are noticed at once; a hung
    // server within about 3 heartbeat intervals.
    await pageA.getByTestId('login-screen').waitFor({ state: 'visible', timeout: 15000 });
    const notice = await pageA.getByTestId('login-notice').textContent();
    check(/Lost the connection|disconnected by the server/.test(notice), `after losing the server the login notice is "${notice}"`);
    await screenshot(pageA, 'server-lost.png');
  }

  check(errors.length === 0, `browser errors:\n  ${errors.join('\n  ')}`);
  await Promise.all([ctxA.close(), ctxB.close(), ctxC.close()]);
}

async function main() {
  if (!WEB_URL) {
    console.error('E2E FAILED: setup: set WEB_URL, e.g. WEB_URL="http://127.0.0.1:3001/?gate=127.0.0.1:3014"');
    process.exit(2);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const watchdog = setTimeout(() => {
    console.error(`E2E FAILED: ${currentStep}: the whole run took longer than ${WATCHDOG_MS} ms`);
    process.exit(3);
  }, WATCHDOG_MS);

  let browser;
  const errors = [];
  try {
    step(`launch ${EXECUTABLE}`);
    browser = await chromium.launch({ executablePath: EXECUTABLE, args: CHROMIUM_ARGS, timeout: 30000 });
    await run(browser, errors);
    console.log(`E2E PASSED (${WEB_URL})`);
  } catch (err) {
    const why = err instanceof E2EError ? err.message : err.stack || String(err);
    console.error(`E2E FAILED: ${currentStep}: ${why}`);
    if (browser) {
      for (const ctx of browser.contexts()) {
        for (const [i, page] of ctx.pages().entries()) {
          await page
            .screenshot({ path: join(ARTIFACTS, `failure-${browser.contexts().indexOf(ctx)}-${i}.png`), timeout: 5000 })
            .catch(() => {});
        }
      }
    }
    process.exitCode = 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
    clearTimeout(watchdog);
  }
}

main();
