'use strict';
// The bench's meter, the same for every peer: it watches the queue from Redis and knows
// nothing about who drains it.
//
// 1. Checks that exactly N jobs wait (and none is active, delayed or prioritized), then
//    prints `ready` so that bench/queue.sh may start the drainer.
// 2. Polls LLEN wait / LLEN active / ZCARD delayed / ZCARD prioritized in one pipeline. Every
//    POLL_MS (default 1 ms) until the first poll that sees a job gone from `wait` (or one in
//    `active`): that marks the start, and its time and `INFO cpu` are taken. Then less often
//    (see below) until the first poll that sees all four empty: that marks the end, with its
//    time and `INFO cpu` again.
// 3. Prints one JSON line: elapsed ms, jobs/s, Redis CPU (used_cpu_sys + used_cpu_user
//    delta) in ms and in µs per job, the number of polls, and the failed / completed set
//    sizes left behind (both should be 0: noop jobs never fail, and removeOnComplete).
//
// Both edges are seen up to one poll late, so the two errors mostly cancel. The polls during
// the drain land in the CPU figure; there are few of them (reported as `polls`).

const Redis = require('ioredis');
const { settings, number, fail } = require('./common');

function redisCpuSeconds(info) {
  let total = 0;
  let seen = 0;
  for (const line of info.split('\n')) {
    const [field, value] = line.trim().split(':');
    if (field === 'used_cpu_sys' || field === 'used_cpu_user') {
      total += Number(value);
      seen += 1;
    }
  }
  if (seen !== 2) throw new Error(`INFO cpu without used_cpu_sys/used_cpu_user: ${info}`);
  return total;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const { connection, queueName, prefix, jobs } = settings();
  const pollMs = number('POLL_MS', 1);
  const timeoutS = number('WATCH_TIMEOUT_S', 600);
  const deadline = Date.now() + timeoutS * 1000;

  // On a Cluster the four keys share the queue's slot (the prefix's hash tag), so the pipeline
  // goes to one master; INFO cpu is summed over every master (see cpuSeconds).
  const redis = connection.isCluster ? connection : new Redis(connection);
  const cpuSeconds = async () => {
    if (!redis.isCluster) return { total: redisCpuSeconds(await redis.info('cpu')), byNode: {} };
    const byNode = {};
    for (const node of redis.nodes('master')) {
      byNode[`${node.options.host}:${node.options.port}`] = redisCpuSeconds(await node.info('cpu'));
    }
    return { total: Object.values(byNode).reduce((a, b) => a + b, 0), byNode };
  };
  const key = (suffix) => `${prefix}:${queueName}:${suffix}`;
  let polls = 0;
  const poll = async () => {
    polls += 1;
    const replies = await redis
      .pipeline()
      .llen(key('wait'))
      .llen(key('active'))
      .zcard(key('delayed'))
      .zcard(key('prioritized'))
      .exec();
    return replies.map(([err, value]) => {
      if (err) throw err;
      return value;
    });
  };
  const checkDeadline = (phase) => {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutS} s ${phase}`);
  };

  const [wait0, active0, delayed0, prioritized0] = await poll();
  if (wait0 !== jobs || active0 + delayed0 + prioritized0 !== 0) {
    throw new Error(
      `expected ${jobs} waiting jobs and nothing else, found wait=${wait0} active=${active0} ` +
        `delayed=${delayed0} prioritized=${prioritized0}`,
    );
  }
  process.stdout.write('ready\n');

  // Start: the first job leaves `wait`.
  for (;;) {
    const [wait, active] = await poll();
    if (wait < jobs || active > 0) break;
    checkDeadline('waiting for the first job to be claimed');
    await sleep(pollMs);
  }
  const startedAt = process.hrtime.bigint();
  const cpu0 = await cpuSeconds();
  const pollsAtStart = polls;

  // End: nothing waiting, active, delayed (a retry) or prioritized. Each poll costs Redis
  // a round trip (~25 µs of its CPU on this kind of machine, measured idle), so the watcher
  // does not poll every POLL_MS throughout: it sleeps a quarter of the time the drain so far
  // says is left (at most MAX_SLEEP_MS), so it polls more often as the end nears. That keeps
  // the end edge within ~POLL_MS (unless the rest of the drain goes 4x faster than the
  // average so far) while a drain of a second costs a few dozen polls.
  const maxSleepMs = number('MAX_SLEEP_MS', 50);
  for (;;) {
    const [wait, active, delayed, prioritized] = await poll();
    const left = wait + active + delayed + prioritized;
    if (left === 0) break;
    checkDeadline(`with wait=${wait} active=${active} delayed=${delayed} prioritized=${prioritized}`);
    const elapsedMs = Number(process.hrtime.bigint() - startedAt) / 1e6;
    const done = jobs - left;
    const leftMs = done > 0 ? (left * elapsedMs) / done : 0;
    await sleep(Math.min(Math.max(leftMs / 4, pollMs), maxSleepMs));
  }
  const endedAt = process.hrtime.bigint();
  const cpu1 = await cpuSeconds();
  const pollsDuringDrain = polls - pollsAtStart;

  const failed = await redis.zcard(key('failed'));
  const completed = await redis.zcard(key('completed'));
  await redis.quit();

  const elapsedMs = Number(endedAt - startedAt) / 1e6;
  const cpuMs = (cpu1.total - cpu0.total) * 1000;
  // Cluster: the share of the Redis CPU spent by the busiest master (one queue is one slot).
  const perNode = Object.keys(cpu1.byNode).map((n) => cpu1.byNode[n] - (cpu0.byNode[n] || 0));
  const busiest = perNode.length && cpuMs > 0 ? (Math.max(...perNode) * 1000) / cpuMs : undefined;
  process.stdout.write(
    `${JSON.stringify({
      jobs,
      elapsed_ms: Number(elapsedMs.toFixed(3)),
      jobs_per_s: Number(((jobs * 1000) / elapsedMs).toFixed(1)),
      redis_cpu_ms: Number(cpuMs.toFixed(3)),
      redis_us_per_job: Number(((cpuMs * 1000) / jobs).toFixed(2)),
      polls: pollsDuringDrain,
      failed,
      completed,
      ...(busiest === undefined ? {} : { masters: perNode.length, busiest_master_share: Number(busiest.toFixed(3)) }),
    })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err) => fail('watch.js', err),
);
