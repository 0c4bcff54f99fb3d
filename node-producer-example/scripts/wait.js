#!/usr/bin/env node
'use strict';
// Wait for jobs to finish, the way a Node producer does: QueueEvents + job.waitUntilFinished.
//
//   node scripts/wait.js --job-id ID [--job-id ID…] [--timeout MS]
//   node scripts/enqueue.js --count 5 | node scripts/wait.js --stdin
//
// Prints one JSON line per job: {"jobId","status":"completed","returnvalue"} or
// {"jobId","status":"failed","failedReason"} or {"jobId","status":"missing"}.
// Exit code: 0 all completed, 1 some failed or missing, 3 timeout (default 30000 ms), 2 usage.

const { parseArgs } = require('node:util');
const { bullmq } = require('../src/bullmq');
const { createQueue, createQueueEvents } = require('../src/queue');

const USAGE = 'usage: wait.js (--job-id ID)… | --stdin [--timeout MS]';

async function readIdsFromStdin() {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk;
  return text.split(/\s+/).filter(Boolean);
}

/** Waits for one job; resolves to the JSON line describing how it ended. */
async function waitForJob(queue, queueEvents, jobId) {
  const job = await bullmq.Job.fromId(queue, jobId);
  if (!job) return { jobId, status: 'missing' };
  try {
    const returnvalue = await job.waitUntilFinished(queueEvents);
    return { jobId, status: 'completed', returnvalue };
  } catch (err) {
    return { jobId, status: 'failed', failedReason: err.message };
  }
}

async function main() {
  let values;
  let ids;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        'job-id': { type: 'string', multiple: true, default: [] },
        stdin: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '30000' },
      },
    }));
    ids = values.stdin ? await readIdsFromStdin() : values['job-id'];
    if (ids.length === 0) throw new Error('no job ids given');
    if (!(Number(values.timeout) > 0)) throw new Error('--timeout must be > 0');
  } catch (err) {
    process.stderr.write(`wait.js: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }

  const timeoutMs = Number(values.timeout);
  const timer = setTimeout(() => {
    process.stderr.write(`wait.js: timed out after ${timeoutMs} ms waiting for ${ids.length} job(s)\n`);
    process.exit(3);
  }, timeoutMs);

  let queue;
  let queueEvents;
  try {
    queue = createQueue();
    queueEvents = createQueueEvents();
  } catch (err) {
    process.stderr.write(`wait.js: ${err.message}\n`);
    process.exit(2);
  }
  await queueEvents.waitUntilReady();
  const results = await Promise.all(ids.map((id) => waitForJob(queue, queueEvents, id)));
  clearTimeout(timer);
  process.stdout.write(results.map((r) => `${JSON.stringify(r)}\n`).join(''));
  await Promise.all([queueEvents.close(), queue.close()]);
  process.exit(results.every((r) => r.status === 'completed') ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`wait.js: ${err.message}\n`);
  process.exit(1);
});
