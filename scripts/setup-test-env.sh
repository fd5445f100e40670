#!/usr/bin/env bash
# Installs what leakwatch's end-to-end tests need, inside the repo, from package registries:
#   .test-env/venv/            Python venv with scripts/requirements-test.txt (OpenTelemetry SDK, rotel)
#   .test-env/bin/rotel-agent  symlink to the OTLP collector binary shipped in the rotel wheel
#   .test-env/env.sh           exports LEAKWATCH_TEST_PYTHON, LEAKWATCH_TEST_ROTEL, LEAKWATCH_TEST_NODE_DIR
#   examples/node/node_modules from `npm ci` (package-lock.json)
#   /usr/bin/prometheus-alertmanager + amtool (Debian package, apt-get as root; its service stays off)
#   prometheus + promtool      Debian's `prometheus` package (apt-get, as root), for tests/analyze.rs;
#                              no system Prometheus service is left running
#   chromium                   Debian's headless browser for tests/page.rs (apt-get, when root)
#   .test-env/cargo/bin/cargo-deb  cargo-deb (crates.io, pinned) for tests/package.rs's .deb
#   nginx                      Debian's nginx (1.22) for tests/fleet.rs, the sharding balancer in
#                              front of two leakwatch instances; its system service stays off
# Idempotent and quick on re-runs: each part is skipped while its stamp (a hash of its
# inputs) matches. Safe to run concurrently (flock). Prints a few lines; exits non-zero
# with a clear message when something cannot be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="$ROOT/.test-env"
VENV="$ENV_DIR/venv"
REQ="$ROOT/scripts/requirements-test.txt"
NODE_DIR="$ROOT/examples/node"
PYTHON="${PYTHON:-python3}"

say() { printf 'setup-test-env: %s\n' "$*"; }
die() { printf 'setup-test-env: ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$ENV_DIR/bin"
exec 9>"$ENV_DIR/.lock"
flock 9

# ---------------------------------------------------------------- Python venv + rotel
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (need CPython 3.11: the rotel wheel is cp311)"
py_version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$py_version" = "3.11" ] || die "$PYTHON is Python $py_version; the rotel wheel needs 3.11 (set PYTHON=python3.11)"

py_stamp="$( { sha256sum "$REQ"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$ENV_DIR/.stamp-python" 2>/dev/null)" = "$py_stamp" ]; then
  say "python venv up to date"
else
  say "creating python venv (.test-env/venv)"
  rm -rf "$VENV" "$ENV_DIR/.stamp-python"
  "$PYTHON" -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      -r "$REQ" >"$ENV_DIR/pip.log" 2>&1; then
    tail -n 20 "$ENV_DIR/pip.log" >&2
    die "pip install -r scripts/requirements-test.txt failed (full log: .test-env/pip.log)"
  fi
  echo "$py_stamp" >"$ENV_DIR/.stamp-python"
fi

ROTEL="$("$VENV/bin/python" -c 'import pathlib, rotel; print(pathlib.Path(rotel.__file__).parent / "rotel-agent")')"
[ -x "$ROTEL" ] || die "rotel-agent not found at $ROTEL (is the rotel wheel installed?)"
# The binary links the system's libpython3.11 (Debian package libpython3.11).
if ldd "$ROTEL" | grep -q 'not found'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing libpython3.11 for rotel-agent (apt-get)"
    apt-get update -qq >/dev/null && apt-get install -y -qq libpython3.11 >/dev/null
  fi
  if ldd "$ROTEL" | grep -q 'not found'; then
    ldd "$ROTEL" | grep 'not found' >&2
    die "rotel-agent is missing shared libraries (install Debian's libpython3.11)"
  fi
fi
"$ROTEL" --version >/dev/null 2>&1 || die "rotel-agent at $ROTEL does not run"
ln -sfn "$ROTEL" "$ENV_DIR/bin/rotel-agent"
rm -f "$ENV_DIR/bin/python"  # a symlinked python would not see the venv

# ---------------------------------------------------------------- Node example
command -v node >/dev/null || die "node not found (need Node.js >= 20.6)"
command -v npm >/dev/null || die "npm not found"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=6)?0:1)' \
  || die "Node.js $(node --version) is too old (need >= 20.6)"

node_stamp="$( { sha256sum "$NODE_DIR/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1)"
if [ -d "$NODE_DIR/node_modules" ] && [ "$(cat "$ENV_DIR/.stamp-node" 2>/dev/null)" = "$node_stamp" ]; then
  say "examples/node/node_modules up to date"
else
  say "npm ci (examples/node)"
  rm -f "$ENV_DIR/.stamp-node"
  if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >"$ENV_DIR/npm.log" 2>&1; then
    tail -n 20 "$ENV_DIR/npm.log" >&2
    die "npm ci in examples/node failed (full log: .test-env/npm.log)"
  fi
  echo "$node_stamp" >"$ENV_DIR/.stamp-node"
fi

# ---------------------------------------------------------------- Alertmanager (Debian package)
# The alerting tests start their own Alertmanager; the package's system service is not wanted.
if [ ! -x /usr/bin/prometheus-alertmanager ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing prometheus-alertmanager (apt-get)"
    # Keep the postinst from starting the service (policy-rc.d 101 = action forbidden).
    policy_created=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_created=1
    fi
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >"$ENV_DIR/apt-alertmanager.log" 2>&1 \
      || { tail -n 20 "$ENV_DIR/apt-alertmanager.log" >&2; [ "$policy_created" = 1 ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install prometheus-alertmanager failed (log: .test-env/apt-alertmanager.log)"; }
    if [ "$policy_created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  fi
  [ -x /usr/bin/prometheus-alertmanager ] \
    || die "prometheus-alertmanager is not installed and cannot be installed here (need root and apt-get): apt-get install prometheus-alertmanager"
fi
# Whatever the postinst enabled or started: the tests run their own instances.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/prometheus-alertmanager ] && [ "$(id -u)" = 0 ]; then
  /etc/init.d/prometheus-alertmanager stop >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------- Prometheus + promtool
# tests/analyze.rs backfills a TSDB with promtool and starts its own Prometheus on a free
# loopback port. Debian's package ships both binaries; its postinst may start a system service
# on :9090, which nothing here needs: it is stopped and disabled.
stop_system_prometheus() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    say "stopping and disabling the system prometheus service"
    systemctl stop prometheus || true
    systemctl disable --quiet prometheus 2>/dev/null || true
  fi
  if [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
    say "stopping the system prometheus service (init.d)"
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null && update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}
PROMETHEUS_BIN="${LEAKWATCH_TEST_PROMETHEUS:-$(command -v prometheus || true)}"
PROMTOOL_BIN="${LEAKWATCH_TEST_PROMTOOL:-$(command -v promtool || true)}"
if [ -z "$PROMETHEUS_BIN" ] || [ -z "$PROMTOOL_BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's prometheus (ships promtool) for the analyze tests (apt-get)"
    # Keep invoke-rc.d from starting the service during the install (policy-rc.d exit 101).
    policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
    fi
    apt_ok=1
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
      >"$ENV_DIR/apt-prometheus.log" 2>&1 || apt_ok=""
    [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
    if [ -z "$apt_ok" ]; then
      tail -n 20 "$ENV_DIR/apt-prometheus.log" >&2
      die "apt-get install prometheus failed (full log: .test-env/apt-prometheus.log)"
    fi
  fi
  PROMETHEUS_BIN="$(command -v prometheus || true)"
  PROMTOOL_BIN="$(command -v promtool || true)"
  [ -n "$PROMETHEUS_BIN" ] && [ -n "$PROMTOOL_BIN" ] \
    || die "prometheus/promtool not found and not installable here (as root: apt-get install prometheus; or set LEAKWATCH_TEST_PROMETHEUS / LEAKWATCH_TEST_PROMTOOL)"
fi
stop_system_prometheus
"$PROMTOOL_BIN" tsdb create-blocks-from openmetrics --help >/dev/null 2>&1 \
  || die "$PROMTOOL_BIN cannot backfill OpenMetrics (need promtool >= 2.24)"
"$PROMETHEUS_BIN" --version >/dev/null 2>&1 || die "$PROMETHEUS_BIN does not run"
say "prometheus: $PROMETHEUS_BIN, promtool: $PROMTOOL_BIN"
# ---------------------------------------------------------------- chromium (tests/page.rs)
chromium_bin() { command -v chromium || command -v chromium-browser || true; }
if [ -z "$(chromium_bin)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium for the page's browser test (apt-get)"
    apt-get update -qq >/dev/null && apt-get install -y -qq chromium >"$ENV_DIR/apt-chromium.log" 2>&1 \
      || { tail -n 20 "$ENV_DIR/apt-chromium.log" >&2; die "apt-get install chromium failed (log: .test-env/apt-chromium.log)"; }
  else
    die "chromium not found and not root: install Debian's chromium (sudo apt-get install chromium) for tests/page.rs"
  fi
fi
say "chromium: $(chromium_bin)"

# ---------------------------------------------------------------- cargo-deb (tests/package.rs)
# The Debian package is built with cargo-deb (crates.io), pinned, installed into .test-env/cargo
# (a few minutes the first time; the stamp makes re-runs instant).
CARGO_DEB_VERSION=3.8.0
CARGO_DEB="$ENV_DIR/cargo/bin/cargo-deb"
if [ -x "$CARGO_DEB" ] && [ "$(cat "$ENV_DIR/.stamp-cargo-deb" 2>/dev/null)" = "$CARGO_DEB_VERSION" ] \
    && "$CARGO_DEB" --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
  say "cargo-deb $CARGO_DEB_VERSION up to date"
else
  command -v cargo >/dev/null || die "cargo not found (needed to install cargo-deb)"
  say "installing cargo-deb $CARGO_DEB_VERSION (cargo install --locked into .test-env/cargo)"
  rm -f "$ENV_DIR/.stamp-cargo-deb"
  if ! cargo install --locked --force cargo-deb --version "$CARGO_DEB_VERSION" --root "$ENV_DIR/cargo" \
      >"$ENV_DIR/cargo-deb.log" 2>&1; then
    tail -n 20 "$ENV_DIR/cargo-deb.log" >&2
    die "cargo install cargo-deb $CARGO_DEB_VERSION failed (full log: .test-env/cargo-deb.log)"
  fi
  "$CARGO_DEB" --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION" \
    || die "$CARGO_DEB does not report version $CARGO_DEB_VERSION"
  echo "$CARGO_DEB_VERSION" >"$ENV_DIR/.stamp-cargo-deb"
fi
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian's dpkg; tests/package.rs builds and installs a .deb)"
command -v systemd-analyze >/dev/null || die "systemd-analyze not found (as root: apt-get install systemd; tests/package.rs verifies the unit)"

# ---------------------------------------------------------------- nginx (tests/fleet.rs)
# The sharding tests start their own nginx (own prefix and config in a temp dir, loopback ports,
# as the test user); the package's service, which would listen on :80, is kept from starting.
NGINX_BIN="${LEAKWATCH_TEST_NGINX:-/usr/sbin/nginx}"
if [ ! -x "$NGINX_BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing nginx for the sharding tests (apt-get)"
    policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
    fi
    apt_ok=1
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; } \
      >"$ENV_DIR/apt-nginx.log" 2>&1 || apt_ok=""
    [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
    if [ -z "$apt_ok" ]; then
      tail -n 20 "$ENV_DIR/apt-nginx.log" >&2
      die "apt-get install nginx failed (full log: .test-env/apt-nginx.log)"
    fi
  fi
  [ -x "$NGINX_BIN" ] \
    || die "nginx is not installed and cannot be installed here (need root and apt-get): apt-get install nginx"
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/nginx ] && [ "$(id -u)" = 0 ] && /etc/init.d/nginx status >/dev/null 2>&1; then
  /etc/init.d/nginx stop >/dev/null 2>&1 || true
fi
"$NGINX_BIN" -V 2>&1 | grep -q -- '--with-http_v2_module' || die "$NGINX_BIN lacks the http_v2 module (gRPC balancing needs it)"
say "nginx: $NGINX_BIN ($("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'))"

cat >"$ENV_DIR/env.sh" <<EOF
# Generated by scripts/setup-test-env.sh; source it to run the e2e pieces by hand.
export LEAKWATCH_TEST_PYTHON="$VENV/bin/python"
export LEAKWATCH_TEST_ROTEL="$ROTEL"
export LEAKWATCH_TEST_NODE_DIR="$NODE_DIR"
export LEAKWATCH_TEST_ALERTMANAGER=/usr/bin/prometheus-alertmanager
export LEAKWATCH_TEST_PROMETHEUS="$PROMETHEUS_BIN"
export LEAKWATCH_TEST_PROMTOOL="$PROMTOOL_BIN"
export LEAKWATCH_TEST_NGINX="$NGINX_BIN"
EOF
say "rotel-agent: $ROTEL"
say "ready (source .test-env/env.sh for LEAKWATCH_TEST_PYTHON / LEAKWATCH_TEST_ROTEL / LEAKWATCH_TEST_PROMETHEUS / LEAKWATCH_TEST_PROMTOOL)"
