#!/usr/bin/env bash
# A local Citus cluster for tests and benchmarks: a coordinator and two workers of this
# machine's PostgreSQL on three ports, data under a temporary folder.
#
#   scripts/citus-cluster.sh install   build and install Citus from the vendored source (once)
#   scripts/citus-cluster.sh up        install if needed, then start the cluster; prints its URL
#   scripts/citus-cluster.sh down      stop the cluster and delete its data
#   scripts/citus-cluster.sh status    the nodes as the coordinator sees them
#
# Environment: CITUS_DIR (data, default /tmp/holdline-citus), CITUS_PORT (the coordinator's
# port, default 9700; the workers take the next two), CITUS_SOURCE (the tarball, default
# ../shared/vendor/citus-13.2.2.tar.gz beside the checkout), PG_BIN (PostgreSQL's programs,
# default `pg_config --bindir`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CITUS_DIR="${CITUS_DIR:-/tmp/holdline-citus}"
CITUS_PORT="${CITUS_PORT:-9700}"
CITUS_SOURCE="${CITUS_SOURCE:-$ROOT/../shared/vendor/citus-13.2.2.tar.gz}"
PG_CONFIG="${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}"
PG_BIN="${PG_BIN:-$("$PG_CONFIG" --bindir)}"
PORTS=("$CITUS_PORT" "$((CITUS_PORT + 1))" "$((CITUS_PORT + 2))")
NAMES=(coordinator worker1 worker2)

# initdb and postgres refuse to run as root: as root, run them as the postgres user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

installed() {
  [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]
}

install_citus() {
  if installed; then
    echo "citus is installed in $("$PG_CONFIG" --pkglibdir)"
    return
  fi
  [ -f "$CITUS_SOURCE" ] || { echo "no Citus source at $CITUS_SOURCE" >&2; exit 1; }
  local major
  major="$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y "postgresql-server-dev-$major" libcurl4-openssl-dev liblz4-dev \
      libzstd-dev libkrb5-dev libssl-dev libselinux1-dev libxslt1-dev libpam0g-dev \
      libreadline-dev >/dev/null
  fi
  local build
  build="$(mktemp -d)"
  tar xzf "$CITUS_SOURCE" -C "$build"
  # PostgreSQL 15.20 exports have_createdb_privilege, which Citus 13.2.2 defines again as a
  # static inline for PostgreSQL 15: its own copy gets another name (TOOLCHAIN.md).
  perl -0pi -e 's/static inline bool\nhave_createdb_privilege\(void\)/#define have_createdb_privilege citus_have_createdb_privilege\nstatic inline bool\nhave_createdb_privilege(void)/' \
    "$build/src/include/pg_version_compat.h"
  (cd "$build" && PG_CONFIG="$PG_CONFIG" ./configure --without-libcurl >/dev/null &&
    make -j"$(nproc)" >/dev/null && make install >/dev/null)
  rm -rf "$build"
  echo "citus installed in $("$PG_CONFIG" --pkglibdir)"
}

psql_at() {
  local port="$1"
  shift
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

up() {
  install_citus
  mkdir -p "$CITUS_DIR"
  chmod 777 "$CITUS_DIR"
  for i in 0 1 2; do
    local data="$CITUS_DIR/${NAMES[$i]}"
    if [ ! -d "$data" ]; then
      as_owner "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust >/dev/null
      cat >>"$data/postgresql.conf" <<EOF
port = ${PORTS[$i]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$CITUS_DIR'
shared_preload_libraries = 'citus'
max_connections = 200
max_prepared_transactions = 100
EOF
    fi
    if ! "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "${PORTS[$i]}"; then
      as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w start >/dev/null
    fi
    psql_at "${PORTS[$i]}" -c 'CREATE EXTENSION IF NOT EXISTS citus'
  done
  psql_at "${PORTS[0]}" -c "SELECT citus_set_coordinator_host('127.0.0.1', ${PORTS[0]})" >/dev/null
  for i in 1 2; do
    psql_at "${PORTS[0]}" -c "SELECT citus_add_node('127.0.0.1', ${PORTS[$i]})" >/dev/null
  done
  echo "postgres://postgres@127.0.0.1:${PORTS[0]}/postgres"
}

down() {
  for i in 0 1 2; do
    local data="$CITUS_DIR/${NAMES[$i]}"
    if [ -d "$data" ]; then
      as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
  done
  rm -rf "$CITUS_DIR"
}

case "${1:-}" in
  install) install_citus ;;
  up) up ;;
  down) down ;;
  status) psql_at "${PORTS[0]}" -c 'SELECT nodename, nodeport, noderole FROM pg_dist_node ORDER BY nodeport' ;;
  *)
    echo "usage: $0 install|up|down|status" >&2
    exit 2
    ;;
esac
