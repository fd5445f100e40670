'use strict';
// A small HTTP service that exports OpenTelemetry metrics and, with LEAK=1,
// leaks memory the way real services do: a module-level cache that is filled
// on every request and never evicted (or, with LEAK_KIND=listeners, an event
// listener per request that is never removed). See README.md for the knobs.

const http = require('node:http');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const v8 = require('node:v8');
const fs = require('node:fs');
const os = require('node:os');
const pathModule = require('node:path');
const { startTelemetry, envInt } = require('./telemetry');
const { startLoad } = require('./load');

const LEAK = process.env.LEAK === '1' || process.env.LEAK === 'true';
const LEAK_KIND = process.env.LEAK_KIND || 'cache';
const PAYLOAD_BYTES = envInt('PAYLOAD_BYTES', 32 * 1024);
const PORT = envInt('PORT', 0);
const LOAD_RPS = envInt('LOAD_RPS', 20);
const DURATION_S = envInt('DURATION_S', 300);
const STATS_MS = envInt('STATS_INTERVAL_MS', 5000);
// Where GET /debug/heapdump writes its snapshots (the guide's endpoint; the server listens on
// 127.0.0.1 only).
const HEAPDUMP_DIR = process.env.HEAPDUMP_DIR || os.tmpdir();
const MAX_DURATION_S = 3600;

if (!['cache', 'listeners'].includes(LEAK_KIND)) {
  console.error(`LEAK_KIND must be cache or listeners, got ${LEAK_KIND}`);
  process.exit(64);
}
if (DURATION_S <= 0 || DURATION_S > MAX_DURATION_S) {
  console.error(`DURATION_S must be in 1..${MAX_DURATION_S}, got ${DURATION_S}`);
  process.exit(64);
}

const telemetry = startTelemetry({ serviceName: 'leakwatch-example-node', leak: LEAK });
const meter = telemetry.meterProvider.getMeter('leakwatch-example-node', '0.1.0');
const requestDuration = meter.createHistogram('http.server.request.duration', {
  description: 'Duration of HTTP server requests.',
  unit: 's',
  advice: {
    explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
  },
});

// The leak: module-level state that outlives the request.
const recentRenders = new Map(); // "cache" of every rendered document, never evicted
const renderEvents = new EventEmitter(); // one listener per request, never removed
renderEvents.setMaxListeners(0);

let requestCount = 0;

/** Builds a per-request document of about PAYLOAD_BYTES bytes of V8 heap. */
function renderDocument(id) {
  // A flat one-byte string; hex of random bytes so V8 cannot share or intern it.
  const body = crypto.randomBytes(Math.max(1, PAYLOAD_BYTES >> 1)).toString('hex');
  return { id, renderedAt: Date.now(), body, tags: ['render', `id-${id}`] };
}

function handleRender(req, res) {
  const id = ++requestCount;
  const doc = renderDocument(id);
  const digest = crypto.createHash('sha1').update(doc.body).digest('hex');
  if (LEAK) {
    if (LEAK_KIND === 'cache') {
      recentRenders.set(id, doc);
    } else {
      renderEvents.on('invalidate', () => doc.body.length);
    }
  }
  const out = JSON.stringify({ id, bytes: doc.body.length, sha1: digest });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
  res.end(out);
  return '/api/render';
}

const server = http.createServer((req, res) => {
  const start = process.hrtime.bigint();
  let route;
  const path = req.url.split('?', 1)[0];
  if (req.method === 'GET' && path === '/api/render') {
    route = handleRender(req, res);
  } else if (req.method === 'GET' && path === '/debug/heapdump') {
    // The guide's heap-dump endpoint: a V8 heap snapshot, answered with {file, size}.
    route = '/debug/heapdump';
    const filename = pathModule.join(HEAPDUMP_DIR, `heapdump-${Date.now()}.heapsnapshot`);
    const file = v8.writeHeapSnapshot(filename);
    const out = JSON.stringify({ file, size: fs.statSync(file).size });
    log('heapdump', { file });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
    res.end(out);
  } else if (req.method === 'GET' && path === '/healthz') {
    route = '/healthz';
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
  } else {
    route = undefined;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }
  res.on('finish', () => {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const attrs = {
      'http.request.method': req.method,
      'http.response.status_code': res.statusCode,
      'url.scheme': 'http',
    };
    if (route) attrs['http.route'] = route;
    requestDuration.record(seconds, attrs);
  });
});

function heapStats() {
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map(s => [s.space_name, s.space_used_size]));
  const h = v8.getHeapStatistics();
  return {
    heap_used: h.used_heap_size,
    heap_limit: h.heap_size_limit,
    old_space_used: spaces.old_space,
    large_object_space_used: spaces.large_object_space,
    rss: process.memoryUsage.rss(),
  };
}

function log(event, fields) {
  console.log(JSON.stringify({ event, t: Date.now() / 1000, ...fields }));
}

let load;
let statsTimer;
let shuttingDown = false;

async function shutdown(reason) {
  if (shuttingDown) return;
  shuttingDown = true;
  clearInterval(statsTimer);
  if (load) load.stop();
  server.close();
  server.closeAllConnections();
  try {
    await telemetry.meterProvider.shutdown(); // final export
  } catch (err) {
    console.error(`metrics shutdown failed: ${err.message}`);
  }
  log('exit', { reason, requests: requestCount, ...heapStats() });
  process.exit(0);
}

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  log('listening', {
    port,
    pid: process.pid,
    leak: LEAK,
    leak_kind: LEAK_KIND,
    payload_bytes: PAYLOAD_BYTES,
    load_rps: LOAD_RPS,
    duration_s: DURATION_S,
    otlp_protocol: telemetry.protocol,
    otlp_url: telemetry.url,
    export_interval_ms: telemetry.intervalMs,
  });
  if (LOAD_RPS > 0) {
    load = startLoad({ url: `http://127.0.0.1:${port}/api/render`, rps: LOAD_RPS, durationS: DURATION_S });
  }
  if (STATS_MS > 0) {
    statsTimer = setInterval(() => {
      log('stats', {
        requests: requestCount,
        retained: LEAK_KIND === 'cache' ? recentRenders.size : renderEvents.listenerCount('invalidate'),
        ...heapStats(),
      });
    }, STATS_MS);
  }
  // The process always ends by itself.
  setTimeout(() => shutdown('duration elapsed'), DURATION_S * 1000).unref();
});

process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
