"""Generate the CustomResourceDefinitions (apiextensions.k8s.io/v1) from the pydantic models.

Pure: models in, dicts/YAML text out. The API server wants a *structural* OpenAPI v3 schema, which
differs from pydantic's JSON Schema: no $ref, no anyOf-with-null for optionals, no titles, boolean
exclusiveMinimum, no ``additionalProperties: false`` beside ``properties``. :func:`structural` does
that translation; CEL rules declared on the models arrive as ``x-kubernetes-validations``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from xorj.controller import models


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    printer_columns: tuple[dict[str, Any], ...]
    description: str
    # spec fields a list may be filtered on server-side (`kubectl get --field-selector`)
    selectable_fields: tuple[str, ...] = ()


TRADING_STRATEGY = KindInfo(
    kind="TradingStrategy",
    plural="tradingstrategies",
    singular="tradingstrategy",
    short_names=("ts", "strat"),
    spec_model=models.TradingStrategySpec,
    status_model=models.TradingStrategyStatus,
    printer_columns=(
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {
            "name": "Executors",
            "type": "string",
            "jsonPath": ".status.executors",
            "description": "ready/desired executor replicas",
        },
        {
            "name": "Traders",
            "type": "integer",
            "jsonPath": ".status.followedTraderCount",
            "description": "followed lead traders",
        },
        {
            "name": "Trades",
            "type": "string",
            "jsonPath": ".status.tradesSummary",
            "description": "trades pending/submitted/confirmed/failed",
        },
        {
            "name": "Vaults",
            "type": "integer",
            "jsonPath": ".status.vaultCount",
            "description": "active vaults a lead swap fans out to",
        },
        {
            "name": "Paused",
            "type": "boolean",
            "jsonPath": ".spec.paused",
            "priority": 1,
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
    description="Which lead traders a vault follows, how it sizes and limits trades, and its "
    "executors.",
)

COPY_TRADE = KindInfo(
    kind="CopyTrade",
    plural="copytrades",
    singular="copytrade",
    short_names=("ct",),
    spec_model=models.CopyTradeSpec,
    status_model=models.CopyTradeStatus,
    printer_columns=(
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy"},
        {"name": "Attempts", "type": "integer", "jsonPath": ".status.attemptCount"},
        {"name": "Signature", "type": "string", "jsonPath": ".status.finalSignature"},
        {"name": "Vaults", "type": "string", "jsonPath": ".status.vaults.summary",
         "description": "confirmed/total trades of a many-vault fan-out"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.errorReason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
    description="One lead trade to mirror; its status mirrors the ledger's trade state machine.",
)

TRADER_POOL = KindInfo(
    kind="TraderPool",
    plural="traderpools",
    singular="traderpool",
    short_names=("tp", "pool"),
    spec_model=models.TraderPoolSpec,
    status_model=models.TraderPoolStatus,
    printer_columns=(
        {"name": "Candidates", "type": "integer", "jsonPath": ".status.candidates"},
        {"name": "Eligible", "type": "integer", "jsonPath": ".status.eligible"},
        {"name": "Ineligible", "type": "integer", "jsonPath": ".status.ineligible"},
        {"name": "Top", "type": "string", "jsonPath": ".status.topTrader", "description": "rank 1's wallet"},
        {"name": "Score", "type": "number", "jsonPath": ".status.topScore", "description": "rank 1's Trust Score"},
        {"name": "Scored", "type": "date", "jsonPath": ".status.lastScored", "description": "when last scored"},
        {"name": "Normalization", "type": "string", "jsonPath": ".spec.normalization", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
    description="Candidate lead traders, ranked by Trust Score from their on-chain history on a schedule.",
)

VAULT = KindInfo(
    kind="Vault",
    plural="vaults",
    singular="vault",
    short_names=("vlt",),
    spec_model=models.VaultSpec,
    status_model=models.VaultStatus,
    # short columns only, and one strategy's vaults selected by the API server at 10,000 objects:
    # `kubectl get vaults --field-selector spec.strategy=NAME`
    printer_columns=(
        {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy"},
        {"name": "PublicKey", "type": "string", "jsonPath": ".spec.publicKey"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
    description="One follower vault of a TradingStrategy: its key's Secret, its own limits and a pause switch.",
    selectable_fields=(".spec.strategy",),
)

KINDS: tuple[KindInfo, ...] = (TRADING_STRATEGY, COPY_TRADE, TRADER_POOL, VAULT)



class _NoAliasDumper(yaml.SafeDumper):
    """A nested default repeated in its parent's default is written out twice, never as a YAML alias:
    the CRD stays readable and means the same to every YAML parser."""

    def ignore_aliases(self, data: object) -> bool:
        return True

def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline every $ref (our models are not recursive, so this terminates)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            target.update(extra)
            return _resolve(target, defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    any_of = node.get("anyOf")
    if any_of is not None:
        non_null = [s for s in any_of if s.get("type") != "null"]
        if len(non_null) == 1 and len(non_null) < len(any_of):
            del node["anyOf"]
            merged = dict(non_null[0])
            merged.update({k: v for k, v in node.items() if k != "default" or v is not None})
            node = merged
    if node.get("default", 0) is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        value = node.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            node["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            node[key] = True
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    for key in ("title",):
        node.pop(key, None)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: _structural(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value)
        else:
            out[key] = value
    return out


def _default_empty_objects(schema: dict[str, Any]) -> None:
    """Give optional sub-objects whose fields all have defaults a default of those defaults, so the
    API server fills them in even when the user leaves them out. (Not ``{}``: the API server checks
    a default against the CEL rules as written, before defaulting inside it.)"""
    props = schema.get("properties", {})
    required = set(schema.get("required", ()))
    for name, prop in props.items():
        if prop.get("type") == "object" and "properties" in prop:
            _default_empty_objects(prop)
            if name not in required and "default" not in prop and not prop.get("required"):
                prop["default"] = {
                    key: sub["default"] for key, sub in prop["properties"].items() if "default" in sub
                }


def structural(model: type[BaseModel], *, default_objects: bool) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (camelCase, CEL rules included)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _structural(_resolve(raw, defs))
    if default_objects:
        _default_empty_objects(schema)
    # conditions: a map keyed by type, so server-side apply merges them the Kubernetes way
    conditions = schema.get("properties", {}).get("conditions")
    if conditions is not None:
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def crd(kind: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, as a dict ready for YAML or the API."""
    spec_schema = structural(kind.spec_model, default_objects=True)
    status_schema = structural(kind.status_model, default_objects=False)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{models.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "xorj-operator"},
        },
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [models.CATEGORY],
            },
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in kind.printer_columns],
                    **({"selectableFields": [{"jsonPath": p} for p in kind.selectable_fields]}
                       if kind.selectable_fields else {}),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `xorj crds` from xorj.controller.models. Do not edit by hand.\n"


def render(kind: KindInfo) -> str:
    """The YAML text of one CRD file (stable: sorted keys off, insertion order kept)."""
    return HEADER + yaml.dump(crd(kind), Dumper=_NoAliasDumper, sort_keys=False, width=100)


def file_name(kind: KindInfo) -> str:
    return f"{models.GROUP}_{kind.plural}.yaml"


def rendered_files() -> dict[str, str]:
    """file name -> YAML text, for every kind."""
    return {file_name(k): render(k) for k in KINDS}
