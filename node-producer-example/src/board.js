'use strict';
// Bull Board (@bull-board/api + @bull-board/express) on the queue from src/queue.js, behind
// HTTP basic auth. There is no way to mount it without credentials. Failed logins are
// throttled per client: after FAILED_LOGINS_MAX wrong user/password pairs within
// FAILED_LOGINS_WINDOW_MS the client gets 429 until the window ends, whatever it sends.

const { sameSecret, RateLimiter } = require('./guard');
const { createBullBoard } = require('@bull-board/api');
const { BullMQAdapter } = require('@bull-board/api/bullMQAdapter');
const { ExpressAdapter } = require('@bull-board/express');

const BOARD_PATH = '/admin/queues';
const REALM = 'Bull Board';
/** Wrong user/password pairs allowed per client per window. */
const FAILED_LOGINS_MAX = 10;
/** The failed-login window: 15 minutes. */
const FAILED_LOGINS_WINDOW_MS = 15 * 60 * 1000;
/** The shortest board password accepted in production. */
const MIN_PASSWORD_LENGTH = 12;
/** Passwords refused in production whatever their length (compose's old default among them). */
const DEFAULT_PASSWORDS = Object.freeze(['admin', 'password', 'changeme', 'demo', 'bullboard', 'secret']);

/**
 * Why `auth` must not guard a board in production (`NODE_ENV=production`), or null when it
 * may: a default or short password is the first thing an attacker tries.
 */
function weakBoardPassword({ user, password }) {
  const p = String(password || '');
  if (DEFAULT_PASSWORDS.includes(p.toLowerCase()) || p === user) return 'BOARD_PASSWORD is a default password';
  if (p.length < MIN_PASSWORD_LENGTH) return `BOARD_PASSWORD must have at least ${MIN_PASSWORD_LENGTH} characters`;
  return null;
}

/** `Authorization: Basic …` → {user, password}, or null when absent or malformed. */
function parseBasicAuth(header) {
  if (typeof header !== 'string') return null;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Express middleware: 401 with a Basic challenge unless the request carries `auth`'s
 * credentials; 429 once the client has sent `maxFailures` wrong pairs within `windowMs`.
 */
function basicAuth({ user, password }, { maxFailures = FAILED_LOGINS_MAX, windowMs = FAILED_LOGINS_WINDOW_MS } = {}) {
  if (!user || !password) throw new Error('basic auth needs a non-empty user and password');
  const failures = new RateLimiter({ max: maxFailures, windowMs });
  return (req, res, next) => {
    const client = req.ip || 'unknown';
    if (failures.blocked(client)) {
      res.set('Retry-After', String(Math.ceil(windowMs / 1000)));
      res.status(429).json({ error: 'too many failed logins: try again later' });
      return;
    }
    const given = parseBasicAuth(req.headers.authorization);
    // Both comparisons always run, so a wrong user takes as long as a wrong password.
    const userOk = given ? sameSecret(given.user, user) : false;
    const passwordOk = given ? sameSecret(given.password, password) : false;
    if (userOk && passwordOk) return next();
    // Only wrong credentials count: a browser's first request carries none.
    if (given) failures.hit(client);
    res.set('WWW-Authenticate', `Basic realm="${REALM}", charset="UTF-8"`);
    res.status(401).json({ error: 'authentication required' });
  };
}

/**
 * Mounts Bull Board for `queue` at BOARD_PATH behind basic auth: `guard` when given (the app
 * shares one with the coverage page, so failed logins count once), else one made from `auth`.
 * @param {import('express').Express} app
 * @param {{queue: object, auth: {user: string, password: string}, guard?: Function}} options
 */
function mountBoard(app, { queue, auth, throttle, guard = basicAuth(auth || {}, throttle) }) {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue)],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'fetch-worker' } },
  });
  app.use(BOARD_PATH, guard, serverAdapter.getRouter());
}

module.exports = {
  BOARD_PATH, mountBoard, basicAuth, parseBasicAuth, weakBoardPassword, MIN_PASSWORD_LENGTH,
};
