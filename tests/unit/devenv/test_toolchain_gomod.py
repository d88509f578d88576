from __future__ import annotations

import json

import pytest

from xorj.devenv.toolchain import gomod
from xorj.devenv.toolchain.builder import PACKAGE_DIR
from xorj.devenv.toolchain.pins import KUBERNETES_COMMANDS, parse_pins

PINS = parse_pins(json.dumps({"kubernetes": "v1.34.12", "etcd": "v3.6.16", "kwok": "v0.8.0", "helm": "v3.22.0",
                               "prometheus": "v0.316.0", "alertmanager": "v0.35.0", "coredns": "v1.15.0"}))

# Shaped like k8s.io/kubernetes's go.mod: comments, blocks, a non-staging replace, a godebug line.
UPSTREAM = """// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.25.0

godebug default=go1.24

require (
	github.com/blang/semver/v4 v4.0.0
	k8s.io/api v0.0.0 // indirect
	k8s.io/client-go v0.0.0
)

require k8s.io/klog/v2 v2.130.1

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go // the client
	k8s.io/kube-proxy => ./staging/src/k8s.io/kube-proxy
)

replace github.com/example/fork => github.com/example/fork v1.2.3
"""


def test_parses_blocks_single_lines_and_comments():
    mod = gomod.parse_go_mod(UPSTREAM)

    assert mod.module == "k8s.io/kubernetes"
    assert mod.go == "1.25.0"
    assert mod.godebug == ["default=go1.24"]
    assert mod.require["k8s.io/klog/v2"] == "v2.130.1"
    assert mod.require["k8s.io/api"] == "v0.0.0"
    assert len(mod.replace) == 4


def test_staging_modules_are_exactly_the_local_replaces():
    assert gomod.staging_modules(UPSTREAM) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/kube-proxy"]


def test_staging_modules_refuses_another_modules_go_mod():
    with pytest.raises(ValueError, match="expected the go.mod of k8s.io/kubernetes"):
        gomod.staging_modules("module example.com/other\n")


def test_rendered_wrapper_replaces_every_staging_module_with_its_release():
    wrapper = gomod.render_kubernetes_wrapper(UPSTREAM, PINS)
    mod = gomod.parse_go_mod(wrapper)

    assert mod.require == {"k8s.io/kubernetes": "v1.34.12"}
    assert {(r.old, r.new, r.new_version) for r in mod.replace} == {
        ("k8s.io/api", "k8s.io/api", "v0.34.12"),
        ("k8s.io/client-go", "k8s.io/client-go", "v0.34.12"),
        ("k8s.io/kube-proxy", "k8s.io/kube-proxy", "v0.34.12"),
    }
    assert mod.godebug == ["default=go1.24"]
    assert mod.tool == [f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS]
    assert gomod.kubernetes_wrapper_problems(wrapper, UPSTREAM, PINS) == []


def test_a_wrapper_missing_a_staging_module_is_caught():
    wrapper = gomod.render_kubernetes_wrapper(UPSTREAM, PINS).replace(
        "\tk8s.io/client-go => k8s.io/client-go v0.34.12\n", ""
    )

    assert gomod.kubernetes_wrapper_problems(wrapper, UPSTREAM, PINS) == [
        "staging module k8s.io/client-go is not replaced"
    ]


def test_a_wrapper_behind_its_pin_is_caught():
    old = gomod.render_kubernetes_wrapper(UPSTREAM, PINS).replace("v0.34.12", "v0.34.11").replace(
        "k8s.io/kubernetes v1.34.12", "k8s.io/kubernetes v1.34.11"
    )

    problems = gomod.kubernetes_wrapper_problems(old, UPSTREAM, PINS)

    assert problems[0] == "requires k8s.io/kubernetes v1.34.11, pins say v1.34.12"
    assert "k8s.io/api is replaced by k8s.io/api v0.34.11, expected k8s.io/api v0.34.12" in problems


def test_the_checked_in_wrappers_match_the_checked_in_pins():
    pins = parse_pins((PACKAGE_DIR / "pins.json").read_text())
    k8s = gomod.parse_go_mod((PACKAGE_DIR / "k8s" / "go.mod").read_text())

    assert k8s.require["k8s.io/kubernetes"] == str(pins.kubernetes)
    assert k8s.godebug == ["default=go1.24"]
    assert len(k8s.replace) >= 30  # k8s 1.34 stages 31 modules; build time checks the exact list
    assert all(r.new == r.old and r.new_version == str(pins.staging_version) for r in k8s.replace)
    assert set(k8s.tool) >= {f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS}
    # go mod tidy resolved each staging module to the pinned release too
    assert k8s.require["k8s.io/api"] == str(pins.staging_version)
    etcd_text = (PACKAGE_DIR / "etcd" / "go.mod").read_text()
    assert gomod.etcd_wrapper_problems(etcd_text, pins) == []
    assert (PACKAGE_DIR / "k8s" / "go.sum").stat().st_size > 0
    assert (PACKAGE_DIR / "etcd" / "go.sum").stat().st_size > 0


def test_ldflags_stamp_the_release_into_both_version_packages():
    flags = gomod.kubernetes_ldflags(PINS).split()

    for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        assert f"{package}.gitVersion=v1.34.12" in flags
        assert f"{package}.gitMajor=1" in flags
        assert f"{package}.gitMinor=34" in flags


def test_go_version_parsing():
    assert gomod.parse_go_version("go1.26.8") == (1, 26)
    assert gomod.parse_go_version("1.25.0") == (1, 25)


def test_helm_is_stamped_with_the_pinned_kubernetes_version():
    # Without these, `helm template` and `helm lint` assume Kubernetes v1.20 when no cluster is
    # given and refuse charts that require a current version.
    flags = gomod.helm_ldflags(PINS)
    for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        assert f"-X {package}.k8sVersionMajor=1" in flags
        assert f"-X {package}.k8sVersionMinor=34" in flags
    assert "-X helm.sh/helm/v3/internal/version.version=v3.22.0" in flags
