#!/bin/bash
# The standby: on first start, a base backup of the primary through a replication slot
# of its own (-C -S), written with standby.signal and primary_conninfo (-R); then it
# runs as a hot standby. Later starts reuse the data directory.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  export PGPASSWORD="$REPLICATION_PASSWORD"
  until pg_isready -h "$PRIMARY_HOST" -U replicator; do sleep 1; done
  pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -C -S standby1 -P
  chmod 0700 "$PGDATA"
fi
exec postgres -D "$PGDATA" -c hot_standby=on
