#!/bin/sh
# Start the MLflow tracking server of the Compose deployment.
# Secrets arrive as environment variables (docker-compose.yml takes them from .env): the Postgres
# password, the basic-auth admin password and the Flask secret key. Nothing secret is baked into
# the image; the auth config is written at start into the auth volume.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
: "${MLFLOW_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY}"
POSTGRES_USER="${POSTGRES_USER:-vigil}"
POSTGRES_HOST="${POSTGRES_HOST:-postgres}"
MLFLOW_DB="${MLFLOW_DB:-mlflow}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
ARTIFACTS="${MLFLOW_ARTIFACTS_DIR:-/mlflow/artifacts}"

export MLFLOW_AUTH_CONFIG_PATH=/mlflow/auth/basic_auth.ini
umask 077
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:////mlflow/auth/basic_auth.db
admin_username = admin
admin_password = ${MLFLOW_ADMIN_PASSWORD}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI

exec mlflow server \
  --backend-store-uri "postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:5432/${MLFLOW_DB}" \
  --artifacts-destination "${ARTIFACTS}" \
  --serve-artifacts \
  --host 0.0.0.0 --port "${MLFLOW_PORT}" \
  --workers 2 \
  --allowed-hosts "mlflow,mlflow:${MLFLOW_PORT},localhost,localhost:${MLFLOW_PORT},127.0.0.1,127.0.0.1:${MLFLOW_PORT}" \
  --app-name basic-auth
