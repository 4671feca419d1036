#!/bin/sh
# Initialise the cluster on first start (official image interface), then run the server.
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"

if [ "${1:-}" != "postgres" ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  echo "docker-entrypoint: refusing to run the server as root; run as user postgres" >&2
  exit 1
fi

if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
fi
: "${POSTGRES_DB:=$POSTGRES_USER}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "docker-entrypoint: database is uninitialised and POSTGRES_PASSWORD(_FILE) is not set" >&2
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  # The password goes through a pipe, never onto a command line.
  printf '%s\n' "$POSTGRES_PASSWORD" | initdb --username="$POSTGRES_USER" --pwfile=/dev/stdin \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
    ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
  # The unix socket is only reachable inside the container; every network peer needs the password.
  {
    echo "local all all trust"
    echo "host all all 0.0.0.0/0 scram-sha-256"
    echo "host all all ::/0 scram-sha-256"
  } > "$PGDATA/pg_hba.conf"
  {
    echo "listen_addresses = '*'"
    echo "password_encryption = scram-sha-256"
  } >> "$PGDATA/postgresql.conf"

  # Socket-only server while initialising: health checks over TCP stay red until the end.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    # psql quotes the name itself (:"db"); -c would not interpolate, hence stdin.
    echo 'CREATE DATABASE :"db";' | psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" \
      -d postgres -v db="$POSTGRES_DB" >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "docker-entrypoint: running $f"
             psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
      *.sh)  echo "docker-entrypoint: running $f"; . "$f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "docker-entrypoint: database initialised"
fi

unset POSTGRES_PASSWORD
exec "$@"
