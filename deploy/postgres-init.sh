#!/bin/sh
# Runs once, on the first start of the postgres service: a second database for MLflow's tracking store.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"$MLFLOW_DB\" OWNER \"$POSTGRES_USER\""
