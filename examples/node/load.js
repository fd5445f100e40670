'use strict';
// Steady-rate HTTP load against a loopback URL, bounded in time and count.
//
// As a module: startLoad({ url, rps, durationS }) → { stop(), done: Promise<stats> }.
// As a script: node load.js --url http://127.0.0.1:8080/api/render --rps 20 --duration 120

const http = require('node:http');

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;
const MAX_RPS = 1000;
const MAX_DURATION_S = 3600;

function checkArgs({ url, rps, durationS }) {
  const u = new URL(url);
  if (u.protocol !== 'http:') throw new Error(`load: only http:// URLs, got ${url}`);
  if (!LOOPBACK.test(u.hostname)) throw new Error(`load: only loopback targets are allowed, got ${u.hostname}`);
  if (!(rps > 0 && rps <= MAX_RPS)) throw new Error(`load: rps must be in (0, ${MAX_RPS}], got ${rps}`);
  if (!(durationS > 0 && durationS <= MAX_DURATION_S)) {
    throw new Error(`load: duration must be in (0, ${MAX_DURATION_S}] seconds, got ${durationS}`);
  }
  return u;
}

/**
 * Sends GET requests at a fixed rate. Requests are scheduled on a fixed clock
 * (not "after the previous one finished") so the rate stays steady, and at
 * most `rps` requests may be in flight at once.
 */
function startLoad({ url, rps, durationS }) {
  const target = checkArgs({ url, rps, durationS });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const maxRequests = Math.ceil(rps * durationS);
  const stats = { sent: 0, ok: 0, failed: 0, durationS };
  let inFlight = 0;
  let stopped = false;
  let resolveDone;
  const done = new Promise(resolve => (resolveDone = resolve));
  const started = process.hrtime.bigint();
  const periodNs = BigInt(Math.round(1e9 / rps));

  function finish() {
    if (stopped && inFlight === 0 && resolveDone) {
      agent.destroy();
      const r = resolveDone;
      resolveDone = null;
      r(stats);
    }
  }

  function fire() {
    stats.sent += 1;
    inFlight += 1;
    const req = http.get(
      { agent, host: target.hostname.replace(/^\[|\]$/g, ''), port: target.port, path: `${target.pathname}${target.search}` },
      res => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode >= 200 && res.statusCode < 300) stats.ok += 1;
          else stats.failed += 1;
          inFlight -= 1;
          finish();
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      stats.failed += 1;
      inFlight -= 1;
      finish();
    });
  }

  // A coarse timer that catches up to the schedule: robust to timer jitter.
  const tickMs = Math.max(1, Math.min(50, Math.floor(1000 / rps)));
  const timer = setInterval(() => {
    const due = Number((process.hrtime.bigint() - started) / periodNs) + 1;
    while (stats.sent < Math.min(due, maxRequests) && inFlight < Math.max(rps, 1)) fire();
    if (stats.sent >= maxRequests) stop();
  }, tickMs);

  function stop() {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    finish();
  }

  return { stop, done, stats };
}

module.exports = { startLoad };

if (require.main === module) {
  const args = { url: 'http://127.0.0.1:8080/api/render', rps: 20, durationS: 60 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--url') args.url = v;
    else if (k === '--rps') args.rps = Number(v);
    else if (k === '--duration') args.durationS = Number(v);
    else {
      console.error(`usage: node load.js [--url URL] [--rps N] [--duration SECONDS]`);
      process.exit(64);
    }
  }
  const load = startLoad(args);
  process.on('SIGINT', () => load.stop());
  process.on('SIGTERM', () => load.stop());
  load.done.then(stats => console.log(JSON.stringify({ event: 'load_done', ...stats })));
}
