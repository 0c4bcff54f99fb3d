'use strict';
// Fills QUEUE_NAME with N jobs shaped like the app's: name `fetch-job`, data
// {branch, pos, date}, opts {attempts: 3, backoff: exponential 1000 ms, removeOnComplete}.
// Adds them with Queue.addBulk in chunks of CHUNK (default 1000). Not timed by the bench.

const { Queue } = require('bullmq');
const { settings, number, fail, closeConnection } = require('./common');

const BRANCHES = ['BMC', 'ALB', 'CRD', 'DVL', 'ESP', 'FRN', 'GLD', 'HRT', 'KNS', 'LMB'];
const JOB_OPTS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: true,
};

// 2026-02-01 .. 2026-02-28, cycling.
function dateFor(k) {
  const day = String((k % 28) + 1).padStart(2, '0');
  return `2026-02-${day}`;
}

async function main() {
  const { connection, queueName, prefix, jobs } = settings();
  const chunk = number('CHUNK', 1000);
  const queue = new Queue(queueName, { connection, prefix });
  await queue.waitUntilReady();

  let added = 0;
  while (added < jobs) {
    const size = Math.min(chunk, jobs - added);
    const batch = new Array(size);
    for (let i = 0; i < size; i++) {
      const k = added + i;
      batch[i] = {
        name: 'fetch-job',
        data: { branch: BRANCHES[k % BRANCHES.length], pos: (k % 12) + 1, date: dateFor(k) },
        opts: JOB_OPTS,
      };
    }
    await queue.addBulk(batch);
    added += size;
  }

  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
  await queue.close();
  await closeConnection(connection);
  if (counts.waiting !== jobs) {
    throw new Error(`expected ${jobs} waiting jobs after the fill, found ${JSON.stringify(counts)}`);
  }
  process.stdout.write(`${JSON.stringify({ filled: added, queue: queueName })}\n`);
}

main().catch((err) => fail('fill.js', err));
