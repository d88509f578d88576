"""The HA ledger's image (images/patroni/Containerfile, ledger.mode=ha) as built with buildah on the
local debootstrapped base: it runs as the chart's uid 999, carries Debian's Postgres and Patroni, has
no Debian-made cluster in it, and its Patroni accepts the settings the chart renders (run inside the
image with ``buildah run``, with the environment the StatefulSet's pod gives it).

Cached by the recipe's hash (a cold build installs Postgres from Debian and Patroni from the package
index: a few minutes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.integration.devenv.test_image import ImageFilesystem
from tests.unit.chart.helm import named, render
from xorj.devenv.image import PATRONI_IMAGE, BuiltImage, ImageBuilder

pytestmark = pytest.mark.slow

POD_ENV = {"PATRONI_NAME": "xorj-postgresql-0", "PATRONI_KUBERNETES_NAMESPACE": "xorj",
           "PATRONI_KUBERNETES_POD_IP": "10.0.0.5", "PATRONI_POSTGRESQL_CONNECT_ADDRESS": "10.0.0.5:5432",
           "PATRONI_RESTAPI_CONNECT_ADDRESS": "10.0.0.5:8008", "PATRONI_SUPERUSER_PASSWORD": "s",
           "PATRONI_REPLICATION_PASSWORD": "r", "PATRONI_REWIND_PASSWORD": "w"}


@pytest.fixture(scope="module")
def builder() -> ImageBuilder:
    return ImageBuilder()


@pytest.fixture(scope="module")
def built(builder: ImageBuilder) -> BuiltImage:
    return builder.build_patroni()


@pytest.fixture
def container(builder: ImageBuilder, built: BuiltImage) -> Iterator[str]:
    name = builder.buildah("from", "--pull-never", built.reference)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            builder.buildah("rm", name)


def test_the_image_is_patroni_and_debians_postgres_as_uid_999(built: BuiltImage) -> None:
    image = ImageFilesystem(built.archive)
    assert built.reference == PATRONI_IMAGE
    assert image.config["User"] == "999:999"
    assert image.config["Cmd"] == ["patroni", "/etc/xorj/patroni/patroni.yml"]
    assert image.resolve("opt/patroni/bin/patroni") is not None
    assert image.resolve("usr/lib/postgresql/17/bin/postgres") is not None
    assert image.resolve("usr/lib/postgresql/17/bin/pg_rewind") is not None
    # no cluster made by Debian's package: Patroni initialises the pod's volume
    assert not [f for f in image.files() if f.startswith("var/lib/postgresql/17/")]
    assert not [f for f in image.files() if f.startswith("opt/patroni/bin/pip")]


def test_the_images_patroni_accepts_the_charts_settings(builder: ImageBuilder, container: str, tmp_path) -> None:
    config = tmp_path / "patroni.yml"
    config.write_text(named(render("ledger.mode=ha"), "ConfigMap", "xorj-postgresql-patroni")["data"]["patroni.yml"])
    builder.buildah("copy", "--chown", "999:999", container, str(config), "/tmp/patroni.yml")
    env = [a for k, v in POD_ENV.items() for a in ("--env", f"{k}={v}")]
    assert builder.buildah("run", "--isolation", "chroot", *env, container, "--", "id", "-u") == "999"
    versions = builder.buildah("run", "--isolation", "chroot", container, "--", "sh", "-c",
                               "patroni --version && postgres --version")
    assert "patroni 4.1.5" in versions and "PostgreSQL) 17." in versions, versions
    # raises (EnvironmentSetupError with Patroni's complaint) when Patroni refuses the settings
    builder.buildah("run", "--isolation", "chroot", *env, container, "--", "patroni", "--validate-config",
                    "/tmp/patroni.yml")
