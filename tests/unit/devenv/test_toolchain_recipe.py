"""Prometheus and Alertmanager join the toolchain without disturbing the cache of the others."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from xorj.devenv.toolchain.pins import parse_pins
from xorj.devenv.toolchain.recipe import ALERTMANAGER_UI_PLACEHOLDER, components

PINS = {"kubernetes": "v1.34.12", "etcd": "v3.6.16", "kwok": "v0.8.0", "helm": "v3.22.0",
        "prometheus": "v0.316.0", "alertmanager": "v0.35.0", "coredns": "v1.15.0"}


def _by_name():
    return {c.name: c for c in components(parse_pins(json.dumps(PINS)))}


def test_prometheus_is_installed_from_its_module_without_ui_assets_and_stamped_with_its_release():
    prometheus = _by_name()["prometheus"]

    assert prometheus.how == "install"
    assert prometheus.packages == ("github.com/prometheus/prometheus/cmd/prometheus@v0.316.0",
                                   "github.com/prometheus/prometheus/cmd/promtool@v0.316.0")
    assert set(prometheus.binaries) == {"prometheus", "promtool"}
    assert "builtinassets" not in prometheus.tags
    assert "github.com/prometheus/common/version.Version=3.16.0" in prometheus.ldflags


def test_alertmanager_is_built_from_a_copy_of_its_module_source_with_placeholder_ui_files():
    alertmanager = _by_name()["alertmanager"]

    assert alertmanager.how == "source"
    assert alertmanager.packages == ("./cmd/alertmanager", "./cmd/amtool")
    assert alertmanager.source_module == "github.com/prometheus/alertmanager@v0.35.0"
    # ui/web.go embeds app/dist and takes fs.Sub of both UIs' roots: each needs a file
    assert {path.rsplit("/", 1)[0] for path, _ in alertmanager.added_files} == {"ui/app/dist/elm",
                                                                           "ui/app/dist/mantine"}
    assert alertmanager.added_files == ALERTMANAGER_UI_PLACEHOLDER


def test_tags_and_added_files_are_part_of_the_key_only_when_used():
    parts = _by_name()
    prometheus, alertmanager, helm = parts["prometheus"], parts["alertmanager"], parts["helm"]

    assert prometheus.key({}) != replace(prometheus, tags=()).key({})
    changed = ((alertmanager.added_files[0][0], "other text"), *alertmanager.added_files[1:])
    assert alertmanager.key({}) != replace(alertmanager, added_files=changed).key({})
    # helm and kwok keep the keys they had before these fields existed (the parts/ names of the
    # toolchain built before Prometheus joined), so adding Prometheus rebuilds nothing else
    assert helm.key({})[:16] == "59017a8ab74a80eb"
    assert parts["kwok"].key({})[:16] == "11a9cf2d553dd0ad"


def _fake_module(tmp_path):
    """A read-only module tree, as Go leaves one in GOMODCACHE."""
    module = tmp_path / "modcache" / "example.org" / "am@v0.35.0"
    (module / "ui").mkdir(parents=True)
    (module / "go.mod").write_text("module example.org/am\n")
    (module / "ui" / "web.go").write_text("package ui\n")
    for path in (module / "ui" / "web.go", module / "go.mod", module / "ui", module):
        path.chmod(0o555 if path.is_dir() else 0o444)
    return module


def test_source_build_copies_the_module_and_adds_files_leaving_the_cache_untouched(tmp_path, monkeypatch):
    from xorj.devenv.toolchain import builder

    module = _fake_module(tmp_path)
    monkeypatch.setattr(builder, "_run", lambda *a, **k: json.dumps({"Dir": str(module)}))
    component = replace(_by_name()["alertmanager"], source_module="example.org/am@v0.35.0")

    copy = builder._module_source_copy("go", component, tmp_path / "src")

    assert (copy / "ui" / "web.go").read_text() == "package ui\n"
    for relative, content in component.added_files:
        assert (copy / relative).read_text() == content
        assert not (module / relative).exists()
    assert sorted(p.name for p in module.rglob("*")) == ["go.mod", "ui", "web.go"]
    for path in (module, module / "ui"):  # let pytest clean up
        path.chmod(0o755)


def test_source_build_refuses_to_replace_an_upstream_file(tmp_path, monkeypatch):
    from xorj.devenv.toolchain import builder

    module = _fake_module(tmp_path)
    monkeypatch.setattr(builder, "_run", lambda *a, **k: json.dumps({"Dir": str(module)}))
    component = replace(_by_name()["alertmanager"], added_files=(("ui/web.go", "package evil\n"),))

    with pytest.raises(Exception, match="ui/web.go exists upstream"):
        builder._module_source_copy("go", component, tmp_path / "src")
    for path in (module, module / "ui"):
        path.chmod(0o755)


def test_coredns_is_installed_from_its_module_root_and_stamped_with_its_version():
    coredns = _by_name()["coredns"]

    assert coredns.how == "install"
    assert coredns.packages == ("github.com/coredns/coredns@v1.15.0",)
    assert coredns.binaries == ("coredns",)
    assert "-X github.com/coredns/coredns/coremain.GitCommit=v1.15.0" in coredns.ldflags


def test_a_coredns_pin_change_changes_only_the_coredns_key():
    before = {c.name: c.key({}) for c in components(parse_pins(json.dumps(PINS)))}
    after = {c.name: c.key({}) for c in components(parse_pins(json.dumps({**PINS, "coredns": "v1.15.1"})))}

    assert [name for name in before if before[name] != after[name]] == ["coredns"]
