'use strict';
// One-line logs on stderr: `<ISO time> <LEVEL> <message> key=value…`.

function formatValue(value) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

function log(level, message, fields = {}) {
  const extra = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}=${formatValue(v)}`)
    .join('');
  process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}${extra}\n`);
}

/** A logger that drops everything (tests). */
function silent() {}

module.exports = { log, silent };
