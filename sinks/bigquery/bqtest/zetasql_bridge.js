// zetasql_bridge.js: the stand-in's link to Google's ZetaSQL analyzer
// (npm package @fivetrandevelopers/zetasql, found through NODE_PATH).
//
// It starts the package's analyzer server on a free local port, then reads
// one JSON request per line on stdin and answers one JSON line per request
// on stdout:
//
//   {"id": 1, "sql": "...", "tables": [{"names": ["p.d.t", ...], "columns":
//    [["event_id", "STRING"], ...], "partition": "timestamp"}], "params":
//    [["o0", "STRING"], ...]}
//   -> {"id": 1, "statements": [{"kind": "resolvedInsertStmtNode",
//       "scans": [{"table": "p.d.t", "bounds": [{"op": ">=", "param": "lo"}]}]}]}
//   or {"id": 1, "error": "Syntax error: ... [at 1:5]"}
//
// A script is analysed statement by statement (parse_resume_location). For
// every scan of a table with a partition column, "bounds" lists the
// conjuncts of the scan's filters that compare that column with a query
// parameter: what lets BigQuery prune partitions. The bridge exits when
// stdin closes, and kills the analyzer server with it.
'use strict';
const path = require('path');
const net = require('net');
const { spawn } = require('child_process');
const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const pkg = path.dirname(require.resolve('@fivetrandevelopers/zetasql/package.json'));
const lib = path.join(pkg, 'lib', 'zetasql');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

const TYPES = {
  STRING: 'TYPE_STRING', INT64: 'TYPE_INT64', INTEGER: 'TYPE_INT64', FLOAT64: 'TYPE_DOUBLE', FLOAT: 'TYPE_DOUBLE',
  BOOL: 'TYPE_BOOL', BOOLEAN: 'TYPE_BOOL', BYTES: 'TYPE_BYTES', TIMESTAMP: 'TYPE_TIMESTAMP', DATE: 'TYPE_DATE',
  DATETIME: 'TYPE_DATETIME', TIME: 'TYPE_TIME', NUMERIC: 'TYPE_NUMERIC', BIGNUMERIC: 'TYPE_BIGNUMERIC', JSON: 'TYPE_JSON',
};
const typeOf = t => ({ typeKind: TYPES[t] || 'TYPE_STRING' });

// The resolved AST comes as nested oneofs: {node: "x", x: {...}}.
function leaf(o) {
  while (o && typeof o === 'object' && typeof o.node === 'string' && o[o.node]) o = o[o.node];
  return o;
}
const idKey = id => (id ? `${id.high || 0}:${id.low || 0}` : '');

const OPS = {
  'ZetaSQL:$greater_or_equal': '>=', 'ZetaSQL:$greater': '>', 'ZetaSQL:$less': '<',
  'ZetaSQL:$less_or_equal': '<=', 'ZetaSQL:$equal': '=', 'ZetaSQL:$between': 'between',
};
const FLIP = { '>=': '<=', '>': '<', '<': '>', '<=': '>=', '=': '=' };

// scans lists the partitioned table scans of one resolved statement with
// the parameter bounds on their partition column.
function scans(stmt, partitions) {
  const found = [];
  const byColumn = new Map();
  const filters = [];
  (function walk(o, insert) {
    if (!o || typeof o !== 'object') return;
    if (Array.isArray(o)) { o.forEach(x => walk(x, false)); return; }
    for (const [k, v] of Object.entries(o)) {
      if (!v || typeof v !== 'object') continue;
      // An INSERT's target is written, not read: no scan.
      if (k === 'tableScan' && insert) continue;
      if (k === 'resolvedTableScanNode' || k === 'tableScan') {
        const ts = v;
        const name = ts.table && (ts.table.fullName || ts.table.name);
        const part = name && partitions.get(name.toLowerCase());
        if (part) {
          const scan = { table: name, bounds: [] };
          found.push(scan);
          for (const c of ((ts.parent && ts.parent.columnList) || [])) {
            if (c.name && c.name.toLowerCase() === part) byColumn.set(idKey(c.columnId), scan);
          }
        }
      }
      if (k === 'resolvedFilterScanNode' && v.filterExpr) filters.push(v.filterExpr);
      if ((k === 'resolvedDeleteStmtNode' || k === 'resolvedUpdateStmtNode') && v.whereExpr) filters.push(v.whereExpr);
      walk(v, k === 'resolvedInsertStmtNode');
    }
  })(stmt, false);
  const conjuncts = (e, out) => {
    const l = leaf(e);
    const fc = l && l.parent && l.parent.function ? l.parent : null;
    if (fc && fc.function.name === 'ZetaSQL:$and') {
      fc.argumentList.forEach(a => conjuncts(a, out));
    } else if (fc) {
      out.push(fc);
    }
    return out;
  };
  const colOf = e => { const l = leaf(e); return l && l.column && l.column.columnId ? byColumn.get(idKey(l.column.columnId)) : undefined; };
  const paramOf = e => { const l = leaf(e); return l && typeof l.name === 'string' && 'position' in l ? l.name : undefined; };
  for (const f of filters) {
    for (const fc of conjuncts(f, [])) {
      const op = OPS[fc.function.name];
      const args = fc.argumentList || [];
      if (!op) continue;
      if (op === 'between' && args.length === 3) {
        const scan = colOf(args[0]);
        const lo = paramOf(args[1]);
        const hi = paramOf(args[2]);
        if (scan && lo) scan.bounds.push({ op: '>=', param: lo });
        if (scan && hi) scan.bounds.push({ op: '<=', param: hi });
        continue;
      }
      if (args.length !== 2) continue;
      let scan = colOf(args[0]);
      let p = paramOf(args[1]);
      let o = op;
      if (!scan || !p) {
        scan = colOf(args[1]);
        p = paramOf(args[0]);
        o = FLIP[op];
      }
      if (scan && p) scan.bounds.push({ op: o, param: p });
    }
  }
  return found;
}

function catalogOf(tables, lang) {
  const root = { name: 'root', builtinFunctionOptions: { languageOptions: lang }, table: [], catalog: [] };
  const sub = (parent, name) => {
    let c = parent.catalog.find(x => x.name === name);
    if (!c) {
      c = { name, table: [], catalog: [] };
      parent.catalog.push(c);
    }
    return c;
  };
  for (const t of tables) {
    const column = t.columns.map(c => ({ name: c[0], type: typeOf(c[1]) }));
    for (const n of t.names) {
      // As one (backquoted) identifier, and as a path of catalogs.
      root.table.push({ name: n, fullName: t.names[0], column });
      const parts = n.split('.');
      let c = root;
      for (const p of parts.slice(0, -1)) c = sub(c, p);
      if (parts.length > 1) c.table.push({ name: parts[parts.length - 1], fullName: t.names[0], column });
    }
  }
  return root;
}

async function main() {
  const port = await freePort();
  const ext = (process.arch.startsWith('arm') ? '_arm' : '') + (process.platform === 'darwin' ? '' : '.so');
  const server = spawn(path.join(lib, 'remote_server' + ext), ['localhost', String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  let exiting = false;
  server.on('exit', code => {
    if (!exiting) {
      process.stderr.write(`zetasql bridge: analyzer server exited (${code})\n`);
      process.exit(1);
    }
  });
  const stop = () => { exiting = true; server.kill('SIGKILL'); };
  process.on('exit', stop);
  process.on('SIGTERM', () => process.exit(0));
  const def = protoLoader.loadSync('local_service.proto', { defaults: true, oneofs: true, includeDirs: [path.join(lib, 'protos')] });
  const proto = grpc.loadPackageDefinition(def);
  const api = new proto.zetasql.local_service.ZetaSqlLocalService(`localhost:${port}`, grpc.credentials.createInsecure(),
    { 'grpc.max_send_message_length': 256 << 20, 'grpc.max_receive_message_length': 1 << 30 });
  const call = (m, req) => new Promise((resolve, reject) => api[m](req, (e, r) => (e ? reject(e) : resolve(r))));
  for (let i = 0; ; i++) {
    try {
      await call('formatSql', { sql: 'SELECT 1' });
      break;
    } catch (e) {
      if (i > 300) throw e;
      await new Promise(r => setTimeout(r, 100));
    }
  }
  const max = await call('getLanguageOptions', { maximumFeatures: true });
  // Every statement kind, BigQuery's product mode (no INT32, UINT64, ...).
  const lang = { enabledLanguageFeatures: max.enabledLanguageFeatures, productMode: 'PRODUCT_EXTERNAL', supportedStatementKinds: [] };
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');

  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let pending = 0;
  let closed = false;
  rl.on('line', async line => {
    if (!line.trim()) return;
    pending++;
    let req;
    let out;
    try {
      req = JSON.parse(line);
      const partitions = new Map();
      for (const t of req.tables || []) {
        if (t.partition) t.names.forEach(n => partitions.set(n.toLowerCase(), t.partition.toLowerCase()));
      }
      const options = {
        languageOptions: lang,
        parameterMode: 'PARAMETER_NAMED',
        queryParameters: (req.params || []).map(p => ({ name: p[0], type: typeOf(p[1]) })),
        errorMessageMode: 'ERROR_MESSAGE_ONE_LINE',
        defaultTimezone: 'UTC',
      };
      const simpleCatalog = catalogOf(req.tables || [], lang);
      const input = req.sql;
      const bytes = Buffer.from(input, 'utf8');
      const statements = [];
      let pos = 0;
      while (!/^[\s;]*$/.test(bytes.subarray(pos).toString('utf8'))) {
        const r = await call('analyze', { options, simpleCatalog, parseResumeLocation: { input, bytePosition: pos, allowResume: true } });
        const st = r.resolvedStatement || {};
        statements.push({ kind: st.node || '', scans: scans(st, partitions) });
        if (!(r.resumeBytePosition > pos)) break;
        pos = r.resumeBytePosition;
      }
      out = { id: req.id, statements };
    } catch (e) {
      out = { id: req && req.id, error: e && e.details ? e.details : String(e), code: e && e.code };
    }
    process.stdout.write(JSON.stringify(out) + '\n');
    if (--pending === 0 && closed) process.exit(0);
  });
  rl.on('close', () => {
    closed = true;
    if (pending === 0) process.exit(0);
  });
}

main().catch(e => {
  process.stderr.write(`zetasql bridge: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
