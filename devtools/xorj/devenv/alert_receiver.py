"""The local environment's Alertmanager webhook receiver: ``xorj dev alert-receiver``.

It speaks Alertmanager's webhook protocol (version 4: a POSTed JSON group with ``alerts``) and
appends one JSON line per alert to ``--out``: when it arrived, its status (firing or resolved), its
labels and annotations, startsAt and endsAt. GET /healthz answers 200 (the start-up wait), and
GET /alerts returns what was recorded (for people and tests).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web


def records_of(payload: dict[str, Any], received_at: float) -> list[dict[str, Any]]:
    """One record per alert of an Alertmanager webhook payload; malformed payloads are refused."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("alerts: must be a list (Alertmanager webhook payload, version 4)")
    records = []
    for alert in alerts:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise ValueError("alerts[]: each must be an object with labels")
        records.append({
            "received_at": received_at,
            "receiver": payload.get("receiver"),
            "status": alert.get("status"),
            "alertname": alert["labels"].get("alertname"),
            "labels": alert["labels"],
            "annotations": alert.get("annotations") or {},
            "startsAt": alert.get("startsAt"),
            "endsAt": alert.get("endsAt"),
            "fingerprint": alert.get("fingerprint"),
        })
    return records


def make_app(out: Path) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        try:
            records = records_of(await request.json(), time.time())
        except ValueError as exc:  # includes JSONDecodeError
            return web.json_response({"error": str(exc)}, status=400)
        with out.open("a") as handle:
            for record in records:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        return web.json_response({"recorded": len(records)})

    async def listing(_: web.Request) -> web.Response:
        text = out.read_text() if out.exists() else ""
        return web.json_response([json.loads(line) for line in text.splitlines() if line.strip()])

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/alerts", receive)
    app.router.add_get("/alerts", listing)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xorj dev alert-receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="file the received alerts are appended to")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    web.run_app(make_app(args.out), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
