// End-to-end test of the /admin dashboard in a real browser (Debian's
// chromium, driven by playwright-core), while a chat runs.
//
// Environment:
//   WEB_URL          the chat page's URL, with ?gate=HOST:PORT (required)
//   ADMIN_URL        the dashboard's URL, e.g. http://127.0.0.1:3001/admin/ (required)
//   ADMIN_PASSWORD   the password of the admin user `admin` (required)
//   E2E_SERVER_IDS   comma-separated servers that must show traffic (required)
//   E2E_TIMEOUT_MS   overall watchdog (default 120000)
//   CHROMIUM         browser executable (default /usr/bin/chromium)
//   E2E_ARTIFACTS    screenshot folder (default web-server/e2e/artifacts)
//
// Story: a user joins a room on the chat page; an operator opens /admin,
// is refused with a wrong password, logs in, sees every server of
// E2E_SERVER_IDS with a non-zero request count (the test harness keeps
// chatting meanwhile), the rooms and the charts; then broadcasts a message
// from the dashboard, which the user's page shows as a system line. The
// dashboard's screenshot is `dashboard.png` in the artifacts folder.
// Exit code 0 = passed; anything else prints "E2E FAILED: <step>: <why>".

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const WEB_URL = process.env.WEB_URL;
const ADMIN_URL = process.env.ADMIN_URL;
const PASSWORD = process.env.ADMIN_PASSWORD;
const SERVER_IDS = (process.env.E2E_SERVER_IDS || '').split(',').filter(Boolean);
const WATCHDOG_MS = Number(process.env.E2E_TIMEOUT_MS || 120000);
const STEP_TIMEOUT_MS = 15000;
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.E2E_ARTIFACTS || join(HERE, 'artifacts');

let currentStep = 'start';
function step(name) {
  currentStep = name;
  console.log(`e2e: ${name}`);
}
class E2EError extends Error {}
function check(condition, message) {
  if (!condition) throw new E2EError(message);
}

async function openPage(context, label, errors, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('pageerror', (err) => errors.push(`${label}: page error: ${err.message}`));
  page.on('console', (msg) => {
    // The refused login is an expected 401 in the console.
    if (msg.type() === 'error' && !msg.text().includes('401')) {
      errors.push(`${label}: console error: ${msg.text()}`);
    }
  });
  await page.goto(url, { timeout: STEP_TIMEOUT_MS });
  return page;
}

/** The request count a server's row shows (NaN when none). */
async function requestsOf(page, id) {
  const text = await page.getByTestId(`server-${id}`).getByTestId('requests-total')
    .textContent({ timeout: 1000 }).catch(() => '');
  return Number(text);
}

async function main() {
  check(WEB_URL && ADMIN_URL && PASSWORD && SERVER_IDS.length,
    'WEB_URL, ADMIN_URL, ADMIN_PASSWORD and E2E_SERVER_IDS are required');
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: EXECUTABLE,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  try {
    step('a user joins room lobby on the chat page');
    const userContext = await browser.newContext();
    const chat = await openPage(userContext, 'user', errors, WEB_URL);
    await chat.locator('body[data-ready="true"]').waitFor();
    await chat.getByTestId('login-name').fill('watcher');
    await chat.getByTestId('login-room').fill('lobby');
    await chat.getByTestId('login-submit').click();
    await chat.getByTestId('chat-screen').waitFor({ state: 'visible' });

    step('the dashboard refuses a wrong password');
    const adminContext = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const admin = await openPage(adminContext, 'admin', errors, ADMIN_URL);
    await admin.getByTestId('admin-login').waitFor({ state: 'visible' });
    await admin.getByTestId('admin-user').fill('admin');
    await admin.getByTestId('admin-password').fill('not-the-password');
    await admin.getByTestId('admin-login-submit').click();
    await admin.getByTestId('admin-login-error').waitFor({ state: 'visible' });
    check(await admin.getByTestId('dashboard').isHidden(), 'the dashboard is hidden after a refused login');

    step('the operator logs in');
    await admin.getByTestId('admin-password').fill(PASSWORD);
    await admin.getByTestId('admin-login-submit').click();
    await admin.getByTestId('dashboard').waitFor({ state: 'visible' });
    const cookieVisible = await admin.evaluate(() => document.cookie);
    check(!cookieVisible.includes('shaddock_admin'), 'the token cookie is HttpOnly (scripts cannot read it)');

    step(`every server shows traffic: ${SERVER_IDS.join(', ')}`);
    const deadline = Date.now() + STEP_TIMEOUT_MS * 2;
    let counts = {};
    for (;;) {
      counts = {};
      for (const id of SERVER_IDS) counts[id] = await requestsOf(admin, id);
      if (SERVER_IDS.every((id) => counts[id] > 0)) break;
      check(Date.now() < deadline, `servers without traffic on the dashboard: ${JSON.stringify(counts)}`);
      await admin.waitForTimeout(500);
    }
    console.log(`e2e: requests per server ${JSON.stringify(counts)}`);
    await admin.getByTestId('room-lobby').waitFor({ state: 'visible' });
    check(await admin.locator('[data-testid="chart-requests"] canvas').count() === 1, 'the requests chart is drawn');

    step('a broadcast from the dashboard reaches the user\'s page');
    const text = 'maintenance in 5 minutes';
    await admin.getByTestId('broadcast-message').fill(text);
    await admin.getByTestId('broadcast-submit').click();
    await admin.getByTestId('action-result').getByText(/broadcast: .*connector/).waitFor();
    await chat.getByTestId('system-message').getByText(`System: ${text}`, { exact: true }).waitFor();

    step('screenshot');
    // Let the charts draw a few more points.
    await admin.waitForTimeout(4000);
    await admin.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    check(errors.length === 0, `page errors:\n${errors.join('\n')}`);
  } finally {
    await browser.close();
  }
}

const watchdog = setTimeout(() => {
  console.error(`E2E FAILED: ${currentStep}: watchdog (${WATCHDOG_MS} ms)`);
  process.exit(3);
}, WATCHDOG_MS);

main().then(() => {
  clearTimeout(watchdog);
  console.log('e2e: dashboard passed');
  process.exit(0);
}).catch((e) => {
  console.error(`E2E FAILED: ${currentStep}: ${e instanceof E2EError ? e.message : e.stack}`);
  process.exit(1);
});
