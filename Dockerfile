# Airflow 3.3.2 image with the reranker project installed (used by every service in docker-compose.yaml).
# The DAG files and plugins are mounted from the repo; the packages they import (reranker_tasks, reranker_airflow)
# are installed here, so a change to those needs a rebuild. hub_emulator/ (dev tooling, not in the wheel) is not
# copied: the compose `local-hub` profile mounts it from the checkout, and .dockerignore keeps it out of the context.
FROM apache/airflow:3.3.2-python3.11

# Mount points of the named volumes, created here so Docker seeds them owned by the airflow user.
USER root
RUN mkdir -p /opt/airflow/artifacts /data/localhub \
    && chown -R airflow:0 /opt/airflow/artifacts /data/localhub
USER airflow

# torch is pinned to 2.13.0 (CPU build) by constraints.txt; its CPU wheels live on the PyTorch index.
# A GPU image swaps the torch wheel: build with --build-arg TORCH_INDEX_URL=<CUDA wheel index, e.g. .../whl/cu128>
# and a matching torch pin in constraints.txt.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /opt/airflow/reranker
COPY --chown=airflow:0 pyproject.toml constraints.txt ./
COPY --chown=airflow:0 reranker_tasks/ reranker_tasks/
COPY --chown=airflow:0 reranker_airflow/ reranker_airflow/
# Pinning apache-airflow keeps pip from changing the image's Airflow while resolving the project.
# EXTRA_PIP: the fsspec filesystem of an object-store RERANKER_ARTIFACTS_ROOT (s3fs, gcsfs, adlfs), or a provider.
ARG EXTRA_PIP=""
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" -c constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" ".[demo]" ${EXTRA_PIP}
WORKDIR /opt/airflow
