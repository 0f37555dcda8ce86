#!/usr/bin/env bash
# A private PostgreSQL cluster under ./.data/pg for `make dev DB=postgres` and the tests.
# Uses Debian's packages (installed when missing and run as root); never touches a system
# cluster. Usage: scripts/pg.sh start|stop|url
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$here/.data/pg"
# One port per checkout, so two checkouts on one machine each get their own cluster.
port="${DAZNODE_PG_PORT:-$((55000 + $(printf '%s' "$here" | cksum | cut -d' ' -f1) % 900))}"
url="postgres://daznode:daznode@127.0.0.1:$port/lnbits"

pg_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$found" ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "Installing PostgreSQL from Debian's packages..." >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
      found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    else
      echo "PostgreSQL is not installed: run 'apt-get install postgresql' as root." >&2
      exit 1
    fi
  fi
  echo "$found"
}

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local bin; bin=$(pg_bin)
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    mkdir -p "$dir/data" "$dir/run"
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
    echo daznode > "$dir/pw" && [ "$(id -u)" = 0 ] && chown postgres "$dir/pw"
    as_pg "$bin/initdb" -D "$dir/data" -U daznode --pwfile="$dir/pw" -A md5 >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -k $dir/run -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  fi
  PGPASSWORD=daznode "$bin/psql" -h 127.0.0.1 -p "$port" -U daznode -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='lnbits'" | grep -q 1 \
    || PGPASSWORD=daznode "$bin/createdb" -h 127.0.0.1 -p "$port" -U daznode lnbits
}

# A fresh, empty database (for one test run).
fresh() {
  local bin name="$1"; bin=$(pg_bin)
  start
  PGPASSWORD=daznode "$bin/dropdb" -h 127.0.0.1 -p "$port" -U daznode --if-exists "$name"
  PGPASSWORD=daznode "$bin/createdb" -h 127.0.0.1 -p "$port" -U daznode "$name"
  echo "postgres://daznode:daznode@127.0.0.1:$port/$name"
}

stop() {
  local bin; bin=$(pg_bin)
  [ -f "$dir/data/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start; echo "$url" ;;
  fresh) fresh "${2:?database name}" ;;
  stop) stop ;;
  url) echo "$url" ;;
  *) echo "usage: $0 start|fresh NAME|stop|url" >&2; exit 2 ;;
esac
