'use strict';
// Bull Board (@bull-board/api + @bull-board/express) on the queue from src/queue.js, behind
// HTTP basic auth. There is no way to mount it without credentials.

const crypto = require('node:crypto');
const { createBullBoard } = require('@bull-board/api');
const { BullMQAdapter } = require('@bull-board/api/bullMQAdapter');
const { ExpressAdapter } = require('@bull-board/express');

const BOARD_PATH = '/admin/queues';
const REALM = 'Bull Board';

/** Compares two strings without leaking where they differ (both hashed to one length). */
function sameSecret(given, expected) {
  const a = crypto.createHash('sha256').update(String(given)).digest();
  const b = crypto.createHash('sha256').update(String(expected)).digest();
  return crypto.timingSafeEqual(a, b);
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

/** Express middleware: 401 with a Basic challenge unless the request carries `auth`'s credentials. */
function basicAuth({ user, password }) {
  if (!user || !password) throw new Error('basic auth needs a non-empty user and password');
  return (req, res, next) => {
    const given = parseBasicAuth(req.headers.authorization);
    // Both comparisons always run, so a wrong user takes as long as a wrong password.
    const userOk = given ? sameSecret(given.user, user) : false;
    const passwordOk = given ? sameSecret(given.password, password) : false;
    if (userOk && passwordOk) return next();
    res.set('WWW-Authenticate', `Basic realm="${REALM}", charset="UTF-8"`);
    res.status(401).json({ error: 'authentication required' });
  };
}

/**
 * Mounts Bull Board for `queue` at BOARD_PATH behind basic auth.
 * @param {import('express').Express} app
 * @param {{queue: object, auth: {user: string, password: string}}} options
 */
function mountBoard(app, { queue, auth }) {
  const guard = basicAuth(auth || {});
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue)],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'fetch-worker' } },
  });
  app.use(BOARD_PATH, guard, serverAdapter.getRouter());
}

module.exports = { BOARD_PATH, mountBoard, basicAuth, parseBasicAuth };
