# syntax=docker/dockerfile:1
# One image for the operator and the executor: the command chooses (`xorj operator`, `xorj executor`).
#
# BASE_IMAGE picks the Python base. Elsewhere the default public image works; on machines that reach
# no image registry a locally made base (debootstrap + buildah) is passed in with
#   --build-arg BASE_IMAGE=localhost/xorj-base:bookworm
# The base needs Python 3.11+ with the venv module; both stages use the same base so the virtualenv's
# interpreter link stays valid when copied into the runtime stage.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: install the package and its dependencies into a self-contained virtualenv -------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/xorj
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# A regular (non-editable) install; then byte-compile once so nothing is written at run time
# (the root filesystem is read-only in the chart's pods).
RUN /opt/xorj/bin/pip install --no-cache-dir . \
 && /opt/xorj/bin/python -m compileall -q /opt/xorj/lib

# ---- runtime: the virtualenv only; no compiler, no pip cache, no source tree --------------------
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="xorj-operator" \
      org.opencontainers.image.description="Kubernetes operator and executor for exactly-once copy trading on Solana"
COPY --from=build /opt/xorj /opt/xorj
ENV PATH=/opt/xorj/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A numeric, non-root user: Kubernetes' runAsNonRoot can only verify a numeric UID.
USER 10001:10001
WORKDIR /tmp
# operator: health 8080, metrics 9101; executor: health and metrics 9102 (as the operator configures it)
EXPOSE 8080 9101 9102
ENTRYPOINT ["xorj"]
CMD ["operator"]
