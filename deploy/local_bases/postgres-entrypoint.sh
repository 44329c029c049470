#!/bin/sh
# The part of postgres:15's entrypoint that docker-compose.yml uses: on an empty $PGDATA, create the cluster
# with $POSTGRES_USER as superuser (password login over TCP, trust on the local socket), create $POSTGRES_DB,
# run /docker-entrypoint-initdb.d/*.sh once against a server that listens on the socket only; then run
# PostgreSQL on every interface of the container (only the compose network and the published loopback port
# reach it).
set -eu
: "${POSTGRES_USER:?POSTGRES_USER must be set}" "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
export POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 -D "$PGDATA"
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # The initialising server listens on a private socket only, so the healthcheck (pg_isready on the default
  # socket) stays red until the scripts are done.
  PGHOST=$(mktemp -d)
  export PGHOST
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories='$PGHOST'" -w start
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for script in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$script" ] || continue
    echo "running $script"
    sh "$script"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGHOST
fi
if [ "$1" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
