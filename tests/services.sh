#!/usr/bin/env bash
# Everything the test suite needs outside Python, on a fresh machine: PostgreSQL running, the real Alertmanager
# binary for the end-to-end test, chromium for the console's browser tests, and the npm validators of deploy/.
# Idempotent; quiet when all is there already.
set -euo pipefail

say() { printf '[services] %s\n' "$*" >&2; }

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -q -h 127.0.0.1 -p 5432 || { say "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }
fi

if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  say "installing prometheus-alertmanager (Debian package) for the end-to-end test"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi
# The Debian package starts a system Alertmanager where systemd runs; the tests start their own instances.

# The console's browser tests drive Debian's chromium with Playwright (Playwright's own browser download is not
# reachable from here, so the tests launch /usr/bin/chromium by its path).
if ! command -v chromium >/dev/null 2>&1; then
  say "installing chromium (Debian package) for the console's browser tests"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# The validators of deploy/ that come from npm (tests/deploy/package.json: Slack's manifest types and the TypeScript
# compiler), installed as locked; again whenever the lock changes.
DEPLOY_CHECKS="$(dirname "$0")/deploy"
if ! cmp -s "$DEPLOY_CHECKS/package-lock.json" "$DEPLOY_CHECKS/node_modules/.installed-lock.json" 2>/dev/null; then
  if ! command -v npm >/dev/null 2>&1; then
    say "installing Node.js and npm (Debian packages) for the deploy/ checks"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  say "installing the deploy/ checks from npm (tests/deploy/package-lock.json)"
  npm ci --prefix "$DEPLOY_CHECKS" --no-audit --no-fund --silent
  cp "$DEPLOY_CHECKS/package-lock.json" "$DEPLOY_CHECKS/node_modules/.installed-lock.json"
fi
