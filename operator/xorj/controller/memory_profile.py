"""Where the operator's memory goes: an opt-in allocation trace (``XORJ_OPERATOR_MEMORY_PROFILE_FRAMES``)
served as JSON at ``/debug/memory`` on the metrics port, for ``bench/bench_operator.py`` and leak hunts.

Off by default: tracemalloc keeps a trace record per live allocation (it roughly doubles the memory it
watches and slows allocation), so a production operator never runs with it. Started from the startup
handler, so the import-time allocations (modules, CRD models) are not traced: what is traced is what
the operator allocates while it serves objects.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

# our own frames are named by their path from the package root; third-party ones from site-packages
_ROOT_MARKERS = ("/site-packages/", "/operator/", "/lib/python3")


def start(frames: int) -> None:
    if frames > 0 and not tracemalloc.is_tracing():
        tracemalloc.start(frames)


def _short(filename: str) -> str:
    for marker in _ROOT_MARKERS:
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    return filename


def report(top: int = 25) -> dict[str, Any]:
    """The largest live allocations now, by source line, by file and (for the top lines) by stack, with
    tracemalloc's current and peak traced totals. Collects garbage first: what is left is held."""
    if not tracemalloc.is_tracing():
        return {"tracing": False}
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces((
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    ))
    current, peak = tracemalloc.get_traced_memory()

    def rows(key: str, limit: int) -> list[dict[str, Any]]:
        out = []
        for stat in snapshot.statistics(key)[:limit]:
            # most recent call first: the allocating line, then its callers
            frames = [f"{_short(f.filename)}:{f.lineno}" for f in reversed(stat.traceback)]
            out.append({"where": frames[0] if key != "traceback" else frames, "kib": round(stat.size / 1024, 1),
                        "blocks": stat.count})
        return out

    return {
        "tracing": True,
        "traced_kib": round(current / 1024, 1),
        "traced_peak_kib": round(peak / 1024, 1),
        "by_file": rows("filename", top),
        "by_line": rows("lineno", top),
        "by_stack": rows("traceback", 10),
    }
