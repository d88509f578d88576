from __future__ import annotations

import json

import pytest

from xorj.devenv.toolchain.pins import Version, parse_pins
from xorj.errors import InvalidInputError

GOOD = {"kubernetes": "v1.34.12", "etcd": "v3.6.16", "kwok": "v0.8.0", "helm": "v3.22.0",
        "prometheus": "v0.316.0", "alertmanager": "v0.35.0", "coredns": "v1.15.0"}


def test_parses_the_pins_and_derives_the_staging_version():
    pins = parse_pins(json.dumps(GOOD))

    assert str(pins.kubernetes) == "v1.34.12"
    assert str(pins.staging_version) == "v0.34.12"
    assert pins.as_dict() == GOOD


def test_the_checked_in_pins_are_valid_and_kubernetes_is_1_34():
    from xorj.devenv.toolchain.builder import PACKAGE_DIR

    pins = parse_pins((PACKAGE_DIR / "pins.json").read_text())

    assert (pins.kubernetes.major, pins.kubernetes.minor) == (1, 34)
    assert (pins.etcd.major, pins.etcd.minor) == (3, 6)
    assert pins.helm.major == 3
    assert pins.prometheus_release.startswith("3.")
    assert pins.coredns.major == 1


def test_prometheus_module_version_names_its_3_x_release():
    pins = parse_pins(json.dumps({**GOOD, "prometheus": "v0.316.2"}))

    assert pins.prometheus_release == "3.16.2"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kubernetes": "1.34.12"}, "kubernetes: '1.34.12' is not a release version"),
        ({"etcd": "v3.6"}, "etcd: 'v3.6' is not a release version"),
        ({"kwok": "v0.8.0-rc.1"}, "kwok: 'v0.8.0-rc.1' is not a release version"),
        ({"helm": "v4.0.0"}, "helm: v4.0.0 must be a 3.x release"),
        ({"prometheus": "v3.16.0"}, "prometheus: v3.16.0 must be the Go module version v0.3NN.x"),
        ({"prometheus": "v0.54.1"}, "prometheus: v0.54.1 must be the Go module version v0.3NN.x"),
        ({"alertmanager": "v1.0.0"}, "alertmanager: v1.0.0 must be a 0.x release"),
        ({"coredns": "v2.0.0"}, "coredns: v2.0.0 must be a 1.x release"),
        ({"coredns": "1.15.0"}, "coredns: '1.15.0' is not a release version"),
        ({"kubernetes": 134}, "field 'kubernetes' must be a version string"),
        ({"extra": "v1.0.0"}, "unknown field(s) extra"),
    ],
)
def test_bad_pins_name_the_field_and_the_rule(change, message):
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_pins(json.dumps({**GOOD, **change}))


def test_a_missing_pin_is_named():
    without_etcd = {k: v for k, v in GOOD.items() if k != "etcd"}
    with pytest.raises(InvalidInputError, match="field 'etcd' is required"):
        parse_pins(json.dumps(without_etcd))


def test_version_round_trips():
    assert str(Version.parse("v10.0.3", field="x")) == "v10.0.3"


def test_a_missing_coredns_pin_is_named():
    without_coredns = {k: v for k, v in GOOD.items() if k != "coredns"}
    with pytest.raises(InvalidInputError, match="field 'coredns' is required"):
        parse_pins(json.dumps(without_coredns))
