#!/usr/bin/env node
// Parse and semantically check Microsoft Sentinel / Log Analytics KQL queries
// with Kusto.Language (npm @kusto/language-service-next 12.4.1, the Kusto
// parser and analyser compiled to JavaScript with Bridge.NET; Azure-Sentinel's
// own CI uses the same library from NuGet, Microsoft.Azure.Kusto.Language).
//
// usage: node kql_check.js FILE.kql [FILE.kql ...]     (one query per file, "-" = stdin)
//
// Each query is analysed with KustoCode.ParseAndAnalyze against a database
// "la" that declares every table of kql/schemas.json (AKSAudit, AKSAuditAdmin,
// AzureDiagnostics, AzureActivity, GCPAuditLogs). Output, one block per file:
//   OK   FILE
//   FAIL FILE:
//     <Severity> <Code> @<offset>+<length>: <message>     (one line per diagnostic)
// Exit 0 when no query has an Error or Warning diagnostic, 1 otherwise, 2 on
// usage errors or when the npm module is missing.
//
// Severities: Kusto.Language reports Error (syntax, unknown column KS142,
// unknown table KS204, unknown function KS211, type errors KS106, missing
// expression KS006, ...), Warning (e.g. KS503 "avoid using the deprecated
// form", or a string-compared-to-number that Kusto would coerce) and
// Suggestion/Information (style hints). Error and Warning fail; Suggestion and
// Information lines are printed under "OK" as "note:" lines and do not fail.
//
// The module is looked up in $DETC_VENV_DIR/node/node_modules (default
// <repo>/.venv/node/node_modules), installed by .ci/setup-validators from
// .ci/npm/package-lock.json.
'use strict';
const fs = require('fs');
const path = require('path');

const HERE = __dirname;
const ROOT = path.resolve(HERE, '..', '..');
const VENVS = process.env.DETC_VENV_DIR || path.join(ROOT, '.venv');
const MODDIR = path.join(VENVS, 'node', 'node_modules', '@kusto', 'language-service-next');
const SCHEMAS = path.join(HERE, 'kql', 'schemas.json');
const FAILING = new Set(['Error', 'Warning']);

function usage(msg) {
  if (msg) console.error(`kql_check: ${msg}`);
  console.error('usage: node kql_check.js FILE.kql [FILE.kql ...]   ("-" = stdin)');
  process.exit(2);
}

function loadKusto() {
  const bridge = path.join(MODDIR, 'bridge.js');
  const lib = path.join(MODDIR, 'Kusto.Language.Bridge.js');
  if (!fs.existsSync(bridge) || !fs.existsSync(lib)) {
    console.error(`FAIL: @kusto/language-service-next not found in ${MODDIR}; run .ci/setup-validators`);
    process.exit(2);
  }
  require(bridge); // defines the global Bridge/System runtime
  require(lib); // defines the global Kusto namespace
  return global.Kusto.Language;
}

function buildGlobals(K) {
  const S = K.Symbols;
  const doc = JSON.parse(fs.readFileSync(SCHEMAS, 'utf8'));
  const tables = Object.entries(doc.tables).map(([name, t]) => {
    const cols = Object.entries(t.columns).map(([c, ty]) => `['${c}']:${ty}`).join(', ');
    return new S.TableSymbol.$ctor7(name, `(${cols})`, '');
  });
  return K.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.ctor('la', tables));
}

function severityName(d) {
  // Diagnostic.Severity is a string ("Error", "Warning", "Suggestion", "Information")
  return String(d.Severity);
}

function check(K, globals, query) {
  const ds = K.KustoCode.ParseAndAnalyze(query, globals).GetDiagnostics();
  const out = [];
  const n = System.Array.getCount(ds, K.Diagnostic);
  for (let i = 0; i < n; i++) {
    const d = System.Array.getItem(ds, i, K.Diagnostic);
    out.push({ sev: severityName(d), code: d.Code, start: d.Start, len: d.Length, msg: d.Message });
  }
  return out;
}

function main(argv) {
  if (argv.length === 0) usage();
  for (const a of argv) if (a.startsWith('-') && a !== '-') usage(`unknown option ${a}`);
  const K = loadKusto();
  const globals = buildGlobals(K);
  let failures = 0;
  for (const name of argv) {
    let text;
    try {
      text = name === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(name, 'utf8');
    } catch (e) {
      console.log(`FAIL ${name}: ${e.message}`);
      failures++;
      continue;
    }
    if (!text.trim()) {
      console.log(`FAIL ${name}: empty query`);
      failures++;
      continue;
    }
    const ds = check(K, globals, text);
    const bad = ds.filter((d) => FAILING.has(d.sev));
    const line = (d) => `    ${d.sev} ${d.code} @${d.start}+${d.len}: ${d.msg}`;
    if (bad.length) {
      failures++;
      console.log(`FAIL ${name}:`);
      for (const d of ds) console.log(line(d));
    } else {
      console.log(`OK   ${name}`);
      for (const d of ds) console.log(`    note: ${line(d).trim()}`);
    }
  }
  if (failures) {
    console.log(`kql_check: ${failures} of ${argv.length} queries have errors or warnings`);
    return 1;
  }
  console.log(`kql_check: ${argv.length} queries OK (Kusto.Language 12.4.1)`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
