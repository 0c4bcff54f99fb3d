'use strict';
// The Node BullMQ peer: a Worker with concurrency CONCURRENCY and a processor that does
// nothing, run until N jobs have completed. Then it closes the worker and prints one JSON
// line with its own view of the drain (from Worker.run to the N-th `completed` event). The
// bench's headline figure comes from watch.js; this line is a cross-check.
// Exit status 0 when N jobs completed; 1 on a failed job, a worker error, or DRAIN_TIMEOUT_S.

const { Worker } = require('bullmq');
const { settings, number, fail, closeConnection } = require('./common');

async function main() {
  const { connection, queueName, prefix, jobs } = settings();
  const concurrency = number('CONCURRENCY');
  const timeoutS = number('DRAIN_TIMEOUT_S', 600);

  // autorun: false so that connecting happens before the clock starts.
  const worker = new Worker(queueName, async () => {}, {
    connection,
    prefix,
    concurrency,
    autorun: false,
  });
  await worker.waitUntilReady();

  let completed = 0;
  let startedAt = 0n;
  const done = new Promise((resolve, reject) => {
    worker.on('completed', () => {
      completed += 1;
      if (completed === jobs) resolve(process.hrtime.bigint());
    });
    worker.on('failed', (job, err) => {
      reject(new Error(`job ${job && job.id} failed: ${err && err.message}`));
    });
    worker.on('error', (err) => reject(new Error(`worker error: ${err && err.message}`)));
    setTimeout(() => {
      reject(new Error(`timed out after ${timeoutS} s with ${completed} of ${jobs} jobs completed`));
    }, timeoutS * 1000).unref();
  });

  startedAt = process.hrtime.bigint();
  const running = worker.run();
  running.catch(() => {});
  let endedAt;
  try {
    endedAt = await done;
  } finally {
    await worker.close();
    await closeConnection(connection);
  }
  const elapsedMs = Number(endedAt - startedAt) / 1e6;
  process.stdout.write(
    `${JSON.stringify({
      peer: 'node',
      concurrency,
      jobs,
      elapsed_ms: Number(elapsedMs.toFixed(3)),
      jobs_per_s: Number(((jobs * 1000) / elapsedMs).toFixed(1)),
    })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err) => fail('drain.js', err),
);
