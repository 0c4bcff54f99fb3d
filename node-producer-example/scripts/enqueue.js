#!/usr/bin/env node
'use strict';
// Enqueue jobs the way the app does (src/queue.js: connection, queue name, default job options).
//
//   node scripts/enqueue.js [--count N] [--name fetch-job] [--data JSON] [--opts JSON]
//   node scripts/enqueue.js --spec '{"name":…,"data":…,"opts":…}' | --spec '[{…},{…}]' | --spec -
//
// Without --data, job i (0-based) gets data {"seq": i}. `--spec -` reads the spec from stdin.
// Prints one job id per line on stdout. Exit code 2 on bad arguments or settings (REDIS_JOB_URL,
// a Redis Cluster queue without a hash tag), 1 on a Redis error.

const { parseArgs } = require('node:util');
const { createQueue } = require('../src/queue');

const USAGE = 'usage: enqueue.js [--count N] [--name NAME] [--data JSON] [--opts JSON] | --spec JSON|-';

function readStdin() {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => (text += chunk));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

/** Builds the list of `{name, data, opts}` to add from the command line. */
async function jobsFromArgs(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string', default: '1' },
      name: { type: 'string', default: 'fetch-job' },
      data: { type: 'string' },
      opts: { type: 'string' },
      spec: { type: 'string' },
    },
  });
  if (values.spec !== undefined) {
    const text = values.spec === '-' ? await readStdin() : values.spec;
    const spec = JSON.parse(text);
    return (Array.isArray(spec) ? spec : [spec]).map((j) => ({
      name: j.name || values.name,
      data: j.data === undefined ? {} : j.data,
      opts: j.opts || {},
    }));
  }
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 0) throw new Error(`--count must be an integer >= 0`);
  const data = values.data === undefined ? undefined : JSON.parse(values.data);
  const opts = values.opts === undefined ? {} : JSON.parse(values.opts);
  return Array.from({ length: count }, (_, i) => ({
    name: values.name,
    data: data === undefined ? { seq: i } : data,
    opts,
  }));
}

async function main() {
  let jobs;
  try {
    jobs = await jobsFromArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`enqueue.js: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  let queue;
  try {
    // A bad REDIS_JOB_URL, or a Cluster queue without a hash tag, is a usage error too.
    queue = createQueue();
  } catch (err) {
    process.stderr.write(`enqueue.js: ${err.message}\n`);
    process.exit(2);
  }
  try {
    const added = jobs.length === 1
      ? [await queue.add(jobs[0].name, jobs[0].data, jobs[0].opts)]
      : await queue.addBulk(jobs);
    process.stdout.write(added.map((job) => `${job.id}\n`).join(''));
  } finally {
    await queue.close();
  }
}

main().catch((err) => {
  process.stderr.write(`enqueue.js: ${err.message}\n`);
  process.exit(1);
});
