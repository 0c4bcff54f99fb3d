'use strict';
// The coverage calendar as HTML: server-rendered, no build step, a little inline CSS and JS
// (allowed by a per-response CSP nonce, nothing else). Every value from data (branch codes,
// job ids, failure reasons, monitor notes) goes through `esc`; the script reads the page's
// values from data-* attributes, never from interpolated JavaScript.

/** HTML-escapes text for element content and quoted attribute values. */
function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

/** The legend: each state, its colour and what it means. */
const STATES = Object.freeze([
  ['done', 'done', 'the import finished'],
  ['missing', 'missing', 'no import finished, no job pending'],
  ['failed', 'failed', 'the last job failed'],
  ['running', 'running', 'a worker is on it'],
  ['queued', 'queued', 'a job waits or waits for a retry'],
  ['future', 'future', 'not yet due'],
]);

const WEEKDAYS = ['Su', 'Mo', 'Tu', 'We', 'Th', 'Fr', 'Sa'];
const DAY_MS = 24 * 60 * 60 * 1000;

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #1d2430; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; }
form.range { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
form.range a { margin-left: 4px; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; margin: 8px 0; }
.legend span { display: inline-flex; gap: 4px; align-items: center; }
.swatch { width: 14px; height: 14px; display: inline-block; border-radius: 3px; position: relative; }
.wrap { overflow-x: auto; border: 1px solid #d8dde6; }
table { border-collapse: separate; border-spacing: 2px; }
th { font-weight: 600; font-size: 12px; white-space: nowrap; background: #fff; }
th.day { width: 24px; text-align: center; }
th.day small { display: block; font-weight: 400; color: #6b7485; }
th.row, td.row { position: sticky; left: 0; text-align: left; padding: 0 6px; background: #fff; z-index: 1; }
td.act { position: sticky; right: 0; background: #fff; padding-left: 6px; }
td.cell { width: 24px; height: 22px; border-radius: 3px; position: relative; cursor: default; }
.s-done { background: #2f9e44; }
.s-missing { background: #e9ecef; outline: 1px dashed #adb5bd; outline-offset: -1px; }
.s-failed { background: #e03131; }
.s-running { background: #1c7ed6; }
.s-queued { background: #74c0fc; }
.s-future { background: #f8f9fa; }
.m::after { content: ""; position: absolute; top: 2px; right: 2px; width: 7px; height: 7px; border-radius: 50%;
  background: #f59f00; border: 1px solid #fff; }
td.cell:hover, td.cell:focus { outline: 2px solid #1d2430; outline-offset: -1px; }
button { font: inherit; font-size: 12px; padding: 2px 8px; cursor: pointer; }
button[disabled] { cursor: default; opacity: .5; }
#status { min-height: 1.4em; margin: 6px 0; font-weight: 600; }
#detail { white-space: pre-line; min-height: 5.6em; margin-top: 8px; padding: 8px; border: 1px solid #d8dde6;
  border-radius: 4px; background: #f8f9fa; font-size: 13px; }
.totals { color: #4a5261; }
.error { color: #c92a2a; font-weight: 600; }
`;

const SCRIPT = `
(function () {
  var page = document.getElementById('coverage');
  var status = document.getElementById('status');
  var detail = document.getElementById('detail');
  // What the last click did, kept across the reload that follows it.
  var store = { get: function () { try { return sessionStorage.getItem('coverage-status'); } catch (e) { return null; } },
    set: function (v) { try { if (v === null) sessionStorage.removeItem('coverage-status'); else sessionStorage.setItem('coverage-status', v); } catch (e) { /* none */ } } };
  if (store.get()) { status.textContent = store.get(); store.set(null); }
  function show(cell) {
    detail.textContent = cell.getAttribute('title');
  }
  document.querySelectorAll('td.cell').forEach(function (cell) {
    cell.addEventListener('mouseenter', function () { show(cell); });
    cell.addEventListener('focus', function () { show(cell); });
  });
  document.querySelectorAll('button[data-enqueue]').forEach(function (button) {
    button.addEventListener('click', function () {
      var body = { start: page.dataset.start, end: page.dataset.end };
      if (button.dataset.branch) { body.branch = button.dataset.branch; body.pos = Number(button.dataset.pos); }
      document.querySelectorAll('button[data-enqueue]').forEach(function (b) { b.disabled = true; });
      status.textContent = 'enqueueing…';
      fetch(page.dataset.enqueue, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
      }).then(function (res) {
        return res.json().then(function (answer) { return { ok: res.ok, answer: answer }; });
      }).then(function (r) {
        if (!r.ok) throw new Error(r.answer.error || 'request failed');
        var skipped = r.answer.skipped.length;
        var said = 'enqueued ' + r.answer.count + ' day(s)' + (skipped ? ', ' + skipped + ' already pending' : '');
        status.textContent = said + '; refreshing…';
        store.set(said);
        setTimeout(function () { location.reload(); }, 1000);
      }).catch(function (err) {
        status.textContent = 'could not enqueue: ' + err.message;
        status.className = 'error';
        document.querySelectorAll('button[data-enqueue]').forEach(function (b) { b.disabled = b.dataset.count === '0'; });
      });
    });
  });
  // While jobs are pending or running, the page refreshes itself (?refresh=0 stops it).
  var every = Number(page.dataset.refresh);
  if (page.dataset.pending !== '0' && every > 0) setTimeout(function () { location.reload(); }, every * 1000);
})();
`;

/** The head, the title and the range form. */
function header({ title, nonce, start = '', end = '' }) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${esc(title)}</title><style nonce="${esc(nonce)}">${STYLE}</style></head>
<body>
<h1>${esc(title)}</h1>
<form class="range" method="get" action="coverage">
  <label>from <input type="date" name="start" value="${esc(start)}" required></label>
  <label>to <input type="date" name="end" value="${esc(end)}" required></label>
  <button type="submit">show</button>
  <a href="coverage">last 14 days</a>
</form>`;
}

/** YYYY-MM-DD shifted by `n` days. */
function shift(day, n) {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
}

/** The cell's hover text: the row, the day, the state, then its detail lines. */
function cellTitle(row, cell) {
  return [`${row.branch} POS ${row.pos} · ${cell.day}: ${cell.state}${cell.monitor ? ', has monitor entries' : ''}`, ...cell.detail].join('\n');
}

/**
 * The page. `data` is coverage()'s answer plus `start`, `end` (the range shown) and `nonce`
 * (the CSP nonce of this response).
 */
function renderPage({ days, rows, totals, start, end, refresh = 5, nonce }) {
  const span = days.length;
  const keep = refresh === 5 ? '' : `&refresh=${refresh}`;
  const prev = `coverage?start=${shift(start, -span)}&end=${shift(end, -span)}${keep}`;
  const next = `coverage?start=${shift(start, span)}&end=${shift(end, span)}${keep}`;
  const pending = totals.running + totals.queued;
  const enqueueable = rows.reduce((n, row) => n + row.enqueueable, 0);
  const out = [header({ title: 'Coverage', nonce, start, end })];
  out.push(`<div id="coverage" data-start="${esc(start)}" data-end="${esc(end)}" data-enqueue="coverage/enqueue" data-pending="${pending}" data-refresh="${refresh}">`);
  out.push(`<p class="totals">${esc(start)} to ${esc(end)} (${span} days), ${rows.length} rows · `
    + `${totals.done} done, ${totals.missing} missing, ${totals.failed} failed, ${totals.running} running, `
    + `${totals.queued} queued${totals.future ? `, ${totals.future} future` : ''}; ${totals.monitor} with monitor entries · `
    + `<a href="${esc(prev)}">◀ earlier</a> <a href="${esc(next)}">later ▶</a>`
    + (pending && refresh ? ` · refreshing every ${refresh} s while jobs are pending (<a href="${esc(`coverage?start=${start}&end=${end}&refresh=0`)}">stop</a>)` : '')
    + '</p>');
  out.push('<div class="legend">');
  for (const [state, label, meaning] of STATES) {
    out.push(`<span title="${esc(meaning)}"><i class="swatch s-${state}"></i>${esc(label)}</span>`);
  }
  out.push('<span title="monitorentries documents for the day"><i class="swatch s-missing m"></i>has monitor entries</span>');
  out.push('</div>');
  out.push(`<div><button type="button" data-enqueue="range" data-count="${enqueueable}"${enqueueable ? '' : ' disabled'}>`
    + `enqueue every missing day in the range (${enqueueable})</button></div>`);
  out.push('<div id="status" role="status"></div>');
  out.push('<div class="wrap"><table><thead><tr><th class="row">branch / POS</th>');
  for (const day of days) {
    const weekday = WEEKDAYS[new Date(`${day}T00:00:00Z`).getUTCDay()];
    const label = day.slice(8) === '01' || day === days[0] ? day.slice(5) : day.slice(8);
    out.push(`<th class="day" title="${esc(day)}">${esc(label)}<small>${weekday}</small></th>`);
  }
  out.push('<th></th></tr></thead><tbody>');
  for (const row of rows) {
    out.push(`<tr data-branch="${esc(row.branch)}" data-pos="${row.pos}"><td class="row">${esc(row.branch)} · ${row.pos}</td>`);
    for (const cell of row.cells) {
      out.push(`<td class="cell s-${cell.state}${cell.monitor ? ' m' : ''}" tabindex="0" data-day="${esc(cell.day)}" `
        + `data-state="${cell.state}" data-monitor="${cell.monitor ? 1 : 0}" title="${esc(cellTitle(row, cell))}"></td>`);
    }
    out.push(`<td class="act"><button type="button" data-enqueue="row" data-branch="${esc(row.branch)}" data-pos="${row.pos}" `
      + `data-count="${row.enqueueable}"${row.enqueueable ? '' : ' disabled'}>enqueue ${row.enqueueable} missing</button></td></tr>`);
  }
  out.push('</tbody></table></div>');
  out.push('<div id="detail">Hover over a day for its detail.</div>');
  out.push('</div>');
  out.push(`<script nonce="${esc(nonce)}">${SCRIPT}</script></body></html>`);
  return out.join('\n');
}

/** A page that says what was wrong with the request, with the range form to fix it. */
function renderError({ message, query, nonce }) {
  const start = typeof query.start === 'string' ? query.start : '';
  const end = typeof query.end === 'string' ? query.end : '';
  return `${header({ title: 'Coverage', nonce, start, end })}
<p class="error">${esc(message)}</p></body></html>`;
}

module.exports = { esc, renderPage, renderError };
