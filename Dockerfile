# syntax=docker/dockerfile:1
# One image for the operator and the executor: the command chooses (`xorj operator`, `xorj executor`).
#
# BASE_IMAGE picks the Python base. The default is the public image pinned by digest, so a moved tag
# cannot change what is built. The digest is the one a public ADR (dated 2026-08-24) records after
# checking Docker Hub's manifest for python:3.11-slim-bookworm that day; this machine reaches no
# image registry, so it could not be re-resolved here. Refresh it the way Renovate's or
# Dependabot's docker managers do (they rewrite the @sha256 of a tag@digest reference), or by hand:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   (the index digest)
# On machines that reach no image registry a locally made base (debootstrap + buildah) is passed in
# with --build-arg BASE_IMAGE=localhost/xorj-base:bookworm (xorj.devenv.image does this). A locally
# committed image has no registry digest to pin; it is rebuilt from Debian packages instead.
# The base needs Python 3.11+ with the venv module; both stages use the same base so the virtualenv's
# interpreter link stays valid when copied into the runtime stage.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# ---- build: install the locked dependencies and the package into a self-contained virtualenv -----
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Two virtualenvs: /opt/build-tools holds pip and the build backend and stays in this stage;
# /opt/xorj is what ships. It is made --without-pip and filled by the tools' pip through
# `--python`, so pip (and setuptools) never enter it.
RUN python3 -m venv /opt/build-tools \
 && python3 -m venv --without-pip /opt/xorj
WORKDIR /src
# Every file installed is named with its sha256 in a lock (scripts/lock-requirements regenerates
# them); --no-deps: nothing the locks do not list is resolved from the index; --only-binary: no
# package's build script runs here, and no build environment is fetched unhashed for one.
COPY requirements.lock requirements-build.lock ./
RUN /opt/build-tools/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
      -r requirements-build.lock \
 && /opt/build-tools/bin/pip --python /opt/xorj/bin/python install --no-cache-dir \
      --require-hashes --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
# The project is built into a wheel with the locked backend (no isolated build environment fetched
# unhashed), then installed without dependencies; then byte-compiled once so nothing is written at
# run time (the root filesystem is read-only in the chart's pods).
RUN /opt/build-tools/bin/pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /tmp/dist . \
 && /opt/build-tools/bin/pip --python /opt/xorj/bin/python install --no-cache-dir --no-index --no-deps \
      /tmp/dist/xorj_operator-*.whl \
 && /opt/xorj/bin/python -m compileall -q /opt/xorj/lib

# ---- runtime: the virtualenv only; no compiler, no pip, no shell, no source tree -----------------
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="xorj-operator" \
      org.opencontainers.image.description="Kubernetes operator and executor for exactly-once copy trading on Solana"
COPY --from=build /opt/xorj /opt/xorj
ENV PATH=/opt/xorj/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# Nothing at run time needs a shell or pip (the entrypoint is the `xorj` console script, whose
# shebang is the virtualenv's python), so an intruder finds neither: the base's shells and its pip
# (the public image's /usr/local one, Debian's and ensurepip's bundled wheels) are removed. Exec
# form, since after this step there is no /bin/sh to run a shell-form RUN; it must stay the last RUN.
RUN ["/usr/bin/rm", "-rf", \
     "/bin/sh", "/bin/bash", "/bin/dash", "/bin/rbash", \
     "/usr/bin/sh", "/usr/bin/bash", "/usr/bin/dash", "/usr/bin/rbash", \
     "/usr/local/bin/pip", "/usr/local/bin/pip3", "/usr/local/bin/pip3.11", \
     "/usr/local/lib/python3.11/site-packages/pip", "/usr/local/lib/python3.11/ensurepip", \
     "/usr/lib/python3.11/ensurepip", "/usr/share/python-wheels"]
# A numeric, non-root user: Kubernetes' runAsNonRoot can only verify a numeric UID.
USER 10001:10001
WORKDIR /tmp
# operator: health 8080, metrics 9101; executor: health and metrics 9102 (as the operator configures it)
EXPOSE 8080 9101 9102
ENTRYPOINT ["xorj"]
CMD ["operator"]
