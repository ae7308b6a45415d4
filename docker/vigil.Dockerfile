# One image with the Vigil package for every role we run ourselves: Airflow 3 (init, api-server,
# scheduler, dag-processor, triggerer), the detector, the stress target app, Spark master/worker.
# Dependencies are the pinned requirements.lock, so the image runs what the tests ran.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    AIRFLOW_HOME=/opt/airflow VIGIL_RUN_DIR=/var/lib/vigil \
    SPARK_HOME=/usr/local/lib/python3.11/site-packages/pyspark
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl procps \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 50000 vigil \
    && mkdir -p /opt/airflow /var/lib/vigil /opt/vigil && chown -R vigil /opt/airflow /var/lib/vigil
WORKDIR /opt/vigil
COPY requirements.lock ./
RUN pip install -r requirements.lock "psycopg2-binary>=2.9"
COPY . .
RUN pip install --no-deps . && chown -R vigil /opt/vigil
USER vigil
ENV PATH=/usr/local/bin:$PATH AIRFLOW__CORE__DAGS_FOLDER=/opt/vigil/dags
