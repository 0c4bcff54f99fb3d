'use strict';
// The coverage calendar seen by a person: headless Chromium (Debian's, driven by
// playwright-core, as the Bull Board check does) opens /coverage, clicks the enqueue button of
// one row, the worker under test (the release binary with its POS pipeline) fetches those days
// from the fake POS server and imports them into MongoDB (nx-27017), and the row's cells turn
// to done; the days the POS server has no files for stay missing, their detail saying why. A
// screenshot is kept in target/artifacts/ (coverage-bullmq<major>.png).
//
// Needs the Rust worker (its POS pipeline): skipped with WORKER=node. Env: CHROMIUM (default
// /usr/bin/chromium, which tests/setup.sh installs), SCREENSHOT (the PNG's path).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const s = require('./support');
const { version, major } = require('../src/bullmq');
const { createApp } = require('../src/app');
const { connectionOptions } = require('../src/queue');
const { silent } = require('../src/log');

const redis = s.useRedis();
const mongo = s.useMongo();

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SAMPLES = path.resolve(__dirname, '../../tests/fixtures/legacy-samples/input');
const SCREENSHOT = process.env.SCREENSHOT
  || path.resolve(__dirname, `../../target/artifacts/coverage-bullmq${major}.png`);
const AUTH = Object.freeze({ user: 'admin', password: 'coverage-browser' });
const START = '2026-02-08';
const END = '2026-02-12';
/** The days the fake POS server has BMC POS 1 exports for. */
const SERVED = ['2026-02-09', '2026-02-10', '2026-02-11'];
// Flags for a root, sandbox-less, offline machine (the same as the Bull Board check's).
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * A directory of POS exports: BMC POS 1's legacy sample of 2026-02-09, and copies of it for
 * the other SERVED days with the file names and the row dates moved to that day (only the
 * rd5000 and rd5800 files carry dates).
 */
function posExports() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-coverage-pos-'));
  const sample = fs.readdirSync(SAMPLES).filter((f) => f.startsWith('a_BMC_1_') && f.includes('_2026-02-09_'));
  assert.ok(sample.length >= 2, `BMC POS 1 sample files of 2026-02-09 in ${SAMPLES}`);
  for (const day of SERVED) {
    for (const file of sample) {
      const text = fs.readFileSync(path.join(SAMPLES, file), 'latin1').replaceAll('2026-02-09', day);
      fs.writeFileSync(path.join(dir, file.replace('_2026-02-09_', `_${day}_`)), text, 'latin1');
    }
  }
  return dir;
}

describe(`coverage page in a browser (worker=${s.WORKER}, bullmq ${version})`, { skip: s.WORKER === 'node' && 'needs the Rust worker\'s POS pipeline' }, () => {

  it('a row\'s enqueue button fetches its missing days and the cells turn to done', { timeout: 120000 }, async (t) => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: run bash tests/setup.sh (or set CHROMIUM)`);
    const h = await s.setup(t, redis);
    const dbName = mongo.server.uniqueDbName('coverage_browser');
    const mongoDb = mongo.client.db(dbName);
    t.after(() => mongoDb.dropDatabase().catch(() => {}));
    const posDir = posExports();
    const raw = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-coverage-raw-'));
    t.after(() => {
      fs.rmSync(posDir, { recursive: true, force: true });
      fs.rmSync(raw, { recursive: true, force: true });
    });

    // Other rows in other states, untouched by the click (and for the picture): BIA POS 1 done,
    // BIA POS 2 partly done with a monitor entry.
    const done = (branch, pos, date, rows) => ({
      _id: `${branch}|${pos}|${date}`, state: 'done', fence: 1, job: `day.${branch}.${pos}.${date}`, rows,
      startedAt: new Date(`${date}T21:00:00Z`), finishedAt: new Date(`${date}T21:01:00Z`), branch, pos, date,
    });
    await mongoDb.collection('imports').insertMany([
      ...['2026-02-08', '2026-02-09', '2026-02-10', '2026-02-11', '2026-02-12'].map((d, i) => done('BIA', 1, d, 400 + i * 17)),
      done('BIA', 2, '2026-02-08', 212), done('BIA', 2, '2026-02-09', 198),
    ]);
    await mongoDb.collection('monitorentries').insertOne({
      branch: 'BIA', pos: '2', date: '2026-02-09', note: '2 rows dated 2026-02-08', createdAt: new Date('2026-02-09T21:01:00Z'),
    });

    // And BMC POS 2: one day failed, one waiting for a retry, placed in the queue by hand
    // before any worker runs (BullMQ's manual-processing API).
    const manual = new h.bullmq.Worker(h.queueName, null, {
      connection: connectionOptions(h.redis.url(1)), prefix: s.PREFIX, autorun: false,
    });
    manual.on('error', () => {});
    t.after(() => manual.close(true).catch(() => {}));
    await h.queue.add('fetch-job', { branch: 'BMC', pos: 2, date: '2026-02-12' }, { jobId: 'day.BMC.2.2026-02-12', attempts: 1 });
    const failing = await manual.getNextJob('seed', { block: false });
    assert.equal(failing.id, 'day.BMC.2.2026-02-12');
    await failing.moveToFailed(new Error('listing failed: HTTP 503 from the POS server after 3 tries'), 'seed', false);
    await h.queue.add('fetch-job', { branch: 'BMC', pos: 2, date: '2026-02-11' }, { jobId: 'day.BMC.2.2026-02-11', delay: 3600000 });

    const pos = await s.startFakePos(t, posDir);
    h.startWorker({
      processor: null,
      env: {
        MONGO_URI: mongo.server.uriFor(dbName),
        POS_LIST_URL: `${pos}fetch_list2.php`,
        POS_FILE_BASE_URL: pos,
        STORAGE: 'local',
        RAW_STORAGE_PATH: raw,
      },
    });

    const app = createApp({ queue: h.queue, mongoDb, branches: ['BMC', 'BIA'], boardAuth: AUTH, log: silent, apiToken: null });
    const url = `${await s.listenApp(t, app)}/coverage?start=${START}&end=${END}`;
    // The page reloads itself every 2 s while jobs are pending; with refresh=0 it holds still.
    const live = `${url}&refresh=2`;
    const still = `${url}&refresh=0`;

    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      httpCredentials: { username: AUTH.user, password: AUTH.password },
      viewport: { width: 1000, height: 560 },
    });
    t.after(async () => {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    });
    const pageErrors = [];
    const open = async () => {
      const tab = await context.newPage();
      tab.on('pageerror', (err) => pageErrors.push(err.message));
      tab.on('console', (msg) => msg.type() === 'error' && pageErrors.push(msg.text()));
      return tab;
    };
    let page = await open();

    const row = (branch, p) => `tr[data-branch="${branch}"][data-pos="${p}"]`;
    const rowStates = (branch, p) => page.$$eval(`${row(branch, p)} td.cell`, (cells) => Object.fromEntries(cells.map((c) => [c.dataset.day, c.dataset.state])));

    // Tab 1 holds still (refresh=0): the states before, the click, its answer and message.
    await page.goto(still);
    assert.deepEqual(await rowStates('BMC', 1), {
      '2026-02-08': 'missing', '2026-02-09': 'missing', '2026-02-10': 'missing', '2026-02-11': 'missing', '2026-02-12': 'missing',
    });
    assert.deepEqual(Object.values(await rowStates('BIA', 1)), ['done', 'done', 'done', 'done', 'done']);
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/coverage/enqueue')),
      page.click(`${row('BMC', 1)} button[data-enqueue="row"]`),
    ]);
    assert.equal(answer.status(), 202);
    assert.deepEqual((await answer.json()).jobIds, ['2026-02-08', ...SERVED, '2026-02-12'].map((d) => `day.BMC.1.${d}`));
    // Shown at once, and again after the reload that follows.
    await page.getByText('enqueued 5 day(s)').waitFor({ timeout: 15000 });

    // Tab 2 reloads itself every 2 s while jobs are pending: the cells change with no action
    // here. The row is read as each load ends, the one moment a read cannot race the next
    // reload (on a loaded machine a read at any other time kept meeting a navigation).
    await page.close();
    page = await open();
    let loads = 0;
    let shown = {};
    page.on('load', async () => {
      loads += 1;
      try {
        shown = await rowStates('BMC', 1);
      } catch {
        // The next reload came first: the next load reads again.
      }
    });
    await page.goto(live);
    let states;
    await h.waitUntil(async () => {
      states = shown;
      if (!SERVED.every((day) => states[day] === 'done')) return false;
      return (await h.counts()).completed === 5;
    }, { timeout: 60000, interval: 1000, message: 'BMC POS 1 days imported and shown done' });
    // BMC POS 2's delayed day keeps a job pending: the tab went on reloading by itself.
    await h.waitUntil(() => loads >= 3, { timeout: 15000, message: 'the page to reload itself' });

    // Tab 3 holds still again, for the detail and the picture (tab 2 may be mid-reload).
    await page.close();
    page = await open();
    await page.goto(still);
    states = await rowStates('BMC', 1);
    assert.deepEqual(states, {
      '2026-02-08': 'missing', '2026-02-09': 'done', '2026-02-10': 'done', '2026-02-11': 'done', '2026-02-12': 'missing',
    });
    // The other row's cells are untouched.
    assert.deepEqual(Object.values(await rowStates('BMC', 2)), ['missing', 'missing', 'missing', 'queued', 'failed']);
    assert.equal(await page.locator(`${row('BMC', 1)} button[data-enqueue="row"]`).textContent(), 'enqueue 2 missing');

    // Each done cell's detail is the worker's record: the rows it imported, the job, the files.
    for (const day of SERVED) {
      const record = await mongoDb.collection('imports').findOne({ _id: `BMC|1|${day}` });
      assert.equal(record.state, 'done');
      const rows = await mongoDb.collection('transactions').countDocuments({ branch: 'BMC', pos: 1, date: new Date(`${day}T00:00:00Z`) });
      assert.ok(rows > 0);
      assert.equal(record.rows, rows, 'the record counts the day\'s rows');
      await page.hover(`${row('BMC', 1)} td.cell[data-day="${day}"]`);
      const detail = await page.locator('#detail').textContent();
      assert.match(detail, new RegExp(`BMC POS 1 · ${day}: done`));
      assert.ok(detail.includes(`imported: ${rows} rows, finished `), detail);
      assert.ok(detail.includes(`imported by job day.BMC.1.${day}\n`), detail);
      assert.doesNotMatch(detail, /last job/, 'the importing job is named once');
      assert.match(detail, /files: \d+ \(\d+ parsed\)/);
    }
    // A day without exports stays missing, and says its job found no files.
    await page.hover(`${row('BMC', 1)} td.cell[data-day="2026-02-08"]`);
    assert.match(await page.locator('#detail').textContent(), /last job: day\.BMC\.1\.2026-02-08, completed .*\njob result: no files/);
    assert.deepEqual(pageErrors, [], 'no script errors on the page');

    // The picture: a done day's detail showing.
    await page.hover(`${row('BMC', 1)} td.cell[data-day="2026-02-10"]`);
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(fs.statSync(SCREENSHOT).size > 10000, 'screenshot written');
  });
});
