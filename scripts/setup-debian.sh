#!/usr/bin/env bash
# Installs the Debian packages locksim's tests and runs use. Idempotent; a
# no-op when everything is present. Needs root (as on CI) or sudo.
set -euo pipefail

need=()
# Each entry: a command that must exist, and the package that provides it.
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }

# PostgreSQL 15 server binaries (initdb, postgres) may live off PATH.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	need+=(postgresql)
fi

# memcached (MegaMutex backend) and libfaketime (server clock skew), which
# has no command of its own: test for its preload library.
check memcached memcached
check faketime faketime
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || need+=(libfaketime)
# MariaDB (MySQL GET_LOCK backend): mariadbd and mariadb-install-db, which
# may live off PATH (/usr/sbin).
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
	need+=(mariadb-server)
fi
# Headless Chromium for the report's browser test (report/browser_test.go).
check chromium chromium

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "setup: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
