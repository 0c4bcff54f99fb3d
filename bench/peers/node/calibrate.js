'use strict';
// What a round trip, a script call and one redis.call inside a script cost this Redis, in
// µs of its CPU (INFO cpu), so that bench/queue.sh's per-command tables can be read as
// "what would fewer calls save". Run by queue.sh once, on its own Redis, before the drains.
//
//   ping       PING, C in flight on one connection: a round trip with the least work (the
//              read, parse, dispatch and reply a pipelined burst shares)
//   eval0      EVALSHA of a script that returns 0, with the 7 keys and 8 arguments of a
//              floor call: what entering and leaving a script costs
//   eval16     EVALSHA of a script that makes 16 redis.call("EXISTS", KEYS[1]) on a missing
//              key: (eval16 - eval0) / 16 is what one redis.call costs, of which the EXISTS
//              itself is its µs/call from INFO commandstats (`exists_us`); the rest is the
//              bridge (arguments into Redis objects, command lookup, reply back into Lua)
//
// Settings: REDIS_URL (db is irrelevant: nothing is stored), CALLS (20000), CONCURRENCY (16).
// Prints one JSON line with µs per call of each, and exists_us.

const Redis = require('ioredis');
const { connection, number, fail } = require('./common');

const EVAL0 = 'return 0';
const EVAL16 = `local n = 0
for i = 1, 16 do n = n + redis.call("EXISTS", KEYS[1]) end
return n`;

function cpuSeconds(info) {
  let total = 0;
  for (const line of info.split('\n')) {
    const [field, value] = line.trim().split(':');
    if (field === 'used_cpu_sys' || field === 'used_cpu_user') total += Number(value);
  }
  return total;
}

async function main() {
  const calls = number('CALLS', 20000);
  const concurrency = number('CONCURRENCY', 16);
  const redis = new Redis(connection());
  const keys = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'calibrate:missing'];
  const args = ['bull:bench:', Date.now(), 'token:0', 30000, 1, 0, 'x', 'y'];
  const sha0 = await redis.script('LOAD', EVAL0);
  const sha16 = await redis.script('LOAD', EVAL16);

  // µs of Redis CPU per call of `one`, with `inFlight` calls outstanding.
  const measure = async (one, inFlight) => {
    let left = calls;
    const cpu0 = cpuSeconds(await redis.info('cpu'));
    const lane = async () => {
      while (left > 0) {
        left -= 1;
        await one();
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
    const cpu1 = cpuSeconds(await redis.info('cpu'));
    return Number((((cpu1 - cpu0) * 1e6) / calls).toFixed(2));
  };

  const result = {};
  result.ping_c1 = await measure(() => redis.ping(), 1);
  result.ping = await measure(() => redis.ping(), concurrency);
  result.eval0 = await measure(() => redis.evalsha(sha0, keys.length, ...keys, ...args), concurrency);
  await redis.config('RESETSTAT');
  result.eval16 = await measure(() => redis.evalsha(sha16, keys.length, ...keys, ...args), concurrency);
  const stats = await redis.info('commandstats');
  const exists = /cmdstat_exists:calls=(\d+),usec=(\d+)/.exec(stats);
  result.exists_us = exists ? Number((Number(exists[2]) / Number(exists[1])).toFixed(2)) : null;
  result.per_redis_call = Number(((result.eval16 - result.eval0) / 16).toFixed(2));
  result.calls = calls;
  result.concurrency = concurrency;
  await redis.quit();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => fail('calibrate.js', err),
);
