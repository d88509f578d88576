"""CRD generation: the files on disk equal what the models generate, and the schema is structural."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from xorj.commands.crds import crds, default_crds_dir, drift
from xorj.controller import crdgen

REPO_CRDS = Path(__file__).resolve().parents[3] / "crds"


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_files_on_disk_match_the_models() -> None:
    assert default_crds_dir() == REPO_CRDS
    assert drift(REPO_CRDS) == {}, "crds/ drifted from the models: run `xorj crds`"


def test_check_flag_fails_on_drift_and_passes_after_writing(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(crds, ["--dir", str(tmp_path), "--check"])
    assert result.exit_code != 0
    assert "drift" in result.output
    result = runner.invoke(crds, ["--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(crds, ["--dir", str(tmp_path), "--check"]).exit_code == 0
    edited = tmp_path / crdgen.file_name(crdgen.COPY_TRADE)
    edited.write_text(edited.read_text().replace("shortNames", "shortNamez"))
    result = runner.invoke(crds, ["--dir", str(tmp_path), "--check"])
    assert result.exit_code != 0
    assert "shortNamez" in result.output


def test_schema_is_structural() -> None:
    for kind in crdgen.KINDS:
        doc = crdgen.crd(kind)
        schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            assert "$ref" not in node, path
            assert "anyOf" not in node, path
            assert "title" not in node, path
            assert not ("properties" in node and "additionalProperties" in node), path
            for key in ("exclusiveMinimum", "exclusiveMaximum"):
                if key in node:
                    assert node[key] is True, path
            if "properties" in node or "items" in node:
                assert node.get("type") in ("object", "array"), path
            if node.get("default") is None and "default" in node:
                raise AssertionError(f"null default at {path}")


def test_names_scope_and_subresources() -> None:
    for kind in crdgen.KINDS:
        doc = yaml.safe_load(crdgen.render(kind))
        spec = doc["spec"]
        assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
        assert spec["group"] == "trading.xorj.io"
        assert spec["scope"] == "Namespaced"
        assert spec["names"]["categories"] == ["xorj"]
        assert spec["names"]["shortNames"]
        version = spec["versions"][0]
        assert version["name"] == "v1alpha1"
        assert version["subresources"] == {"status": {}}
    ts = crdgen.crd(crdgen.TRADING_STRATEGY)["spec"]
    assert ts["names"]["shortNames"] == ["ts", "strat"]
    columns = [c["name"] for c in ts["versions"][0]["additionalPrinterColumns"]]
    assert columns[:4] == ["Ready", "Executors", "Traders", "Trades"] and columns[-1] == "Age"
    ct = crdgen.crd(crdgen.COPY_TRADE)["spec"]
    columns = [c["name"] for c in ct["versions"][0]["additionalPrinterColumns"]]
    assert columns[:4] == ["Phase", "Strategy", "Attempts", "Signature"] and columns[-1] == "Age"


def _rules(kind: crdgen.KindInfo) -> list[tuple[str, dict]]:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [
        (path, rule)
        for path, node in _walk(schema)
        for rule in node.get("x-kubernetes-validations", [])
    ]


def test_cel_rules_present_where_the_issue_wants_them() -> None:
    ts_rules = {r["rule"]: (p, r) for p, r in _rules(crdgen.TRADING_STRATEGY)}
    assert "self.initialBps <= self.capBps" in ts_rules
    assert "self.capBps <= self.absoluteCapBps" in ts_rules
    assert "has(self.traders) != has(self.topN)" in ts_rules
    ct_rules = {r["rule"]: (p, r) for p, r in _rules(crdgen.COPY_TRADE)}
    path, rule = ct_rules["self == oldSelf"]
    assert path == ".properties.spec"
    assert "immutable" in rule["message"]
    assert "self.amount > 0" in ct_rules
    for _, rule in _rules(crdgen.TRADING_STRATEGY) + _rules(crdgen.COPY_TRADE):
        assert re.search(r"spec(\.|\b)", rule["message"]), rule  # every message names the field


def test_defaults_let_the_api_server_fill_nested_objects() -> None:
    spec = crdgen.crd(crdgen.TRADING_STRATEGY)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]
    assert spec["properties"]["slippage"]["default"] == {
        "initialBps": 100, "stepBps": 50, "capBps": 200, "absoluteCapBps": 500, "maxAttempts": 3}
    assert spec["properties"]["slippage"]["properties"]["initialBps"]["default"] == 100
    assert "default" not in spec["properties"]["vault"]  # has required fields: no silent default
    assert set(spec["required"]) == {"vault", "endpoints"}
