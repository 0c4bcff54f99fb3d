'use strict';
// Picks the BullMQ major the suite talks to. The app pins bullmq@5; `bullmq6` is an npm alias of
// bullmq@6, so the same tests can prove the worker also satisfies v6 producers and observers.
// BULLMQ_MAJOR=5 (default) or 6. Everything else in this package requires BullMQ through here.

const MODULES = { 5: 'bullmq', 6: 'bullmq6' };

const major = String(process.env.BULLMQ_MAJOR || '5');
if (!MODULES[major]) {
  throw new Error(`BULLMQ_MAJOR must be 5 or 6, got ${JSON.stringify(major)}`);
}

const bullmq = require(MODULES[major]);
const version = require(`${MODULES[major]}/package.json`).version;

module.exports = { bullmq, major: Number(major), version };
