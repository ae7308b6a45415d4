#!/bin/sh
# First start of the postgres container: one database per metadata store (Airflow, MLflow),
# owned by the POSTGRES_USER the entrypoint created.
set -eu
for db in airflow mlflow; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE $db OWNER \"$POSTGRES_USER\";"
done
