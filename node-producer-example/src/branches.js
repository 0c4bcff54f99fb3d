'use strict';
// The branches GET /missing expects transactions from: `BRANCHES` is a file with one code per
// line (legacy's settings/branches.txt) when such a file exists, otherwise a comma list; unset,
// the 28 codes of legacy's settings/branches.txt (listed below), in that file's order.

const fs = require('node:fs');
const { isBranchCode } = require('./missing');

const LEGACY_BRANCHES = Object.freeze([
  'AYALA-FRN', 'BETA', 'B-CPOL', 'B-SMS', 'BIA', 'BMC', 'BRLN', 'BPAG', 'BGRAN', 'BTAB',
  'CAMALIG', 'CNTRO', 'DAET', 'DAR', 'EME', 'GOA', 'IRIGA', 'MAGS', 'MAS', 'OLA', 'PACML',
  'ROB-FRN', 'SANPILI', 'SIPOCOT', 'SMLGZ-FRN', 'SMLIP', 'SMNAG', 'ROXAS',
]);

/**
 * Codes from a list of raw entries: trimmed, empty ones left out, duplicates kept once (first
 * position wins). Throws on a code that is not letters, digits and `-`, or on an empty list.
 */
function normalizeBranches(entries, source) {
  const codes = [];
  for (const entry of entries) {
    const code = entry.trim();
    if (code === '') continue;
    if (!isBranchCode(code)) {
      throw new Error(`${source}: branch code ${JSON.stringify(code)} is not 1-64 letters, digits or "-"`);
    }
    if (!codes.includes(code)) codes.push(code);
  }
  if (codes.length === 0) throw new Error(`${source}: no branch codes`);
  return codes;
}

/** Reads `BRANCHES` (see the file comment). */
function loadBranches(value = process.env.BRANCHES) {
  if (value === undefined || value.trim() === '') return LEGACY_BRANCHES.slice();
  let isFile = false;
  try {
    isFile = fs.statSync(value).isFile();
  } catch {
    isFile = false;
  }
  if (isFile) {
    return normalizeBranches(fs.readFileSync(value, 'utf8').replace(/^\uFEFF/, '').split(/\r?\n/), `BRANCHES file ${value}`);
  }
  return normalizeBranches(value.split(','), 'BRANCHES');
}

module.exports = { LEGACY_BRANCHES, loadBranches, normalizeBranches };
