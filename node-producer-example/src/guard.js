'use strict';
// The API's guards: a bearer token (API_TOKEN) and a per-client rate limit. The app faces a
// network: without them anyone who reaches it can enqueue work and read job failures.

const crypto = require('node:crypto');

/** Compares two strings without leaking where they differ (both hashed to one length). */
function sameSecret(given, expected) {
  const a = crypto.createHash('sha256').update(String(given)).digest();
  const b = crypto.createHash('sha256').update(String(expected)).digest();
  return crypto.timingSafeEqual(a, b);
}

/**
 * Express middleware requiring `Authorization: Bearer <token>`.
 *
 * @param {string|null|undefined} token the API token; `null` disables the check (local demos
 *        only, chosen explicitly); `undefined` (not configured) refuses every request, so a
 *        forgotten setting fails closed.
 */
function bearerAuth(token) {
  if (token === null) return (req, res, next) => next();
  return (req, res, next) => {
    if (typeof token !== 'string' || token === '') {
      res.status(401).json({ error: 'the API is locked: the server has no API_TOKEN configured' });
      return;
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization || '');
    if (m && sameSecret(m[1], token)) return next();
    res.set('WWW-Authenticate', 'Bearer realm="fetch-app"');
    res.status(401).json({ error: 'authentication required: send Authorization: Bearer <API_TOKEN>' });
  };
}

/**
 * A fixed-window counter per key (the client's address): at most `max` events per `windowMs`.
 * In memory, per process: enough for one producer; several replicas each allow `max`.
 */
class RateLimiter {
  constructor({ max, windowMs, now = Date.now }) {
    this.max = max;
    this.windowMs = windowMs;
    this.now = now;
    this.windows = new Map();
  }

  /** Counts one event for `key`; returns the ms to wait when over the limit, else 0. */
  hit(key) {
    const t = this.now();
    let w = this.windows.get(key);
    if (!w || t >= w.start + this.windowMs) {
      w = { start: t, count: 0 };
      this.windows.set(key, w);
      if (this.windows.size > 10000) this.sweep(t);
    }
    w.count += 1;
    return w.count > this.max ? w.start + this.windowMs - t : 0;
  }

  /** True when `key` is over the limit, without counting. */
  blocked(key) {
    const w = this.windows.get(key);
    return Boolean(w) && this.now() < w.start + this.windowMs && w.count >= this.max;
  }

  /** Forgets expired windows. */
  sweep(t) {
    for (const [key, w] of this.windows) if (t >= w.start + this.windowMs) this.windows.delete(key);
  }
}

/** Express middleware: 429 with Retry-After once a client exceeds `limiter`. */
function rateLimit(limiter) {
  return (req, res, next) => {
    const wait = limiter.hit(req.ip || 'unknown');
    if (wait === 0) return next();
    res.set('Retry-After', String(Math.ceil(wait / 1000)));
    res.status(429).json({ error: `too many requests: at most ${limiter.max} per ${limiter.windowMs / 1000} s` });
  };
}

module.exports = { sameSecret, bearerAuth, RateLimiter, rateLimit };
