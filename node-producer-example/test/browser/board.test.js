'use strict';
// Bull Board, seen by a person: headless Chromium (Debian's, driven by playwright-core)
// opens the board the demo serves after its jobs ran, and checks that the completed fetch
// jobs are listed with their progress and return values. A screenshot is kept for CI.
//
// Env: BOARD_URL (…/admin/queues), BOARD_USER, BOARD_PASSWORD, EXPECT_COMPLETED (count),
//      SCREENSHOT (path of the PNG), CHROMIUM (default /usr/bin/chromium).
// Run by compose/demo.sh with DEMO_BROWSER_TEST=1 (tests/run-all.sh does).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BOARD_URL = process.env.BOARD_URL;
const USER = process.env.BOARD_USER || 'admin';
const PASSWORD = process.env.BOARD_PASSWORD || 'demo';
const EXPECTED = Number(process.env.EXPECT_COMPLETED || '1');
const SCREENSHOT = process.env.SCREENSHOT || path.resolve(__dirname, '../../../target/artifacts/bull-board.png');

// Flags for a root, sandbox-less, offline machine (see the environment notes).
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

test('Bull Board shows the completed fetch jobs with progress and return values', { skip: !BOARD_URL && 'BOARD_URL not set (run through compose/demo.sh)', timeout: 120000 }, async () => {
  const userDataDir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'fw-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ARGS,
    headless: true,
    httpCredentials: { username: USER, password: PASSWORD },
    viewport: { width: 1400, height: 1600 },
  });
  try {
    const page = await context.newPage();

    // The board's own API, through the same authenticated browser: the counts it shows.
    const api = await page.request.get(`${BOARD_URL}/api/queues`);
    assert.equal(api.status(), 200);
    const queues = (await api.json()).queues;
    const fetchQueue = queues.find((q) => q.name === 'fetch');
    assert.ok(fetchQueue, `queue fetch listed: ${queues.map((q) => q.name)}`);
    assert.equal(fetchQueue.counts.completed, EXPECTED, 'completed count');

    await page.goto(`${BOARD_URL}/queue/fetch?status=completed`, { waitUntil: 'networkidle' });
    await page.getByText('fetch-job').first().waitFor({ timeout: 30000 });
    const cards = await page.getByText('fetch-job').count();
    assert.ok(cards >= Math.min(EXPECTED, 10), `job cards shown: ${cards}`);

    // The default tab of a completed job shows its data and return value, and the card shows
    // its progress.
    const text = await page.locator('body').innerText();
    assert.match(text, /returnValue/, 'return value shown');
    assert.match(text, /imported:\s*\d+/, 'rows.imported shown');
    assert.match(text, /dateMismatch:\s*0/, 'rows.dateMismatch shown');
    assert.match(text, /100%/, 'progress 100% shown');

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
    assert.ok(fs.statSync(SCREENSHOT).size > 10000, 'screenshot written');
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
});
