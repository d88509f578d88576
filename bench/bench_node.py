"""Figures for the real node: node start time, project image build time (cold and cached).

    python bench/bench_node.py [--cluster xorj-node-bench] [--cold-base]

--cold-base also removes the cached debootstrap rootfs and base image first (adds ~1.5 min).
Starts its own cluster and node, and removes both at the end.
"""

from __future__ import annotations

import argparse
import shutil
import time

from xorj.devenv.cluster import LocalCluster
from xorj.devenv.image import PROJECT_BASE, ImageBuilder
from xorj.devenv.node import LocalNode


def timed(label: str, action):
    started = time.monotonic()
    result = action()
    print(f"{label}: {time.monotonic() - started:.1f}s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cluster", default="xorj-node-bench")
    parser.add_argument("--cold-base", action="store_true")
    args = parser.parse_args()
    builder = ImageBuilder()
    if args.cold_base:
        for rootfs in builder.cache_dir.glob("rootfs-*"):
            shutil.rmtree(rootfs)
        (builder.cache_dir / "base.stamp").unlink(missing_ok=True)
        timed("base image (debootstrap + buildah commit), cold", lambda: builder.build_base())
    timed("project image, cold (buildah build --no-cache, base cached)", lambda: builder.build_project(force=True))
    timed("project image, cached (sources unchanged)", lambda: builder.build_project())
    cluster = LocalCluster(name=args.cluster, nodes=1)
    node = LocalNode(cluster)
    try:
        timed("cluster up", lambda: cluster.up())
        timed("node up (netns, containerd, pause image, kubelet, kube-proxy -> Ready)", lambda: node.up())
        timed("image import into containerd", lambda: node.load_image(builder.build_project().archive))
        timed("node down", lambda: node.down())
    finally:
        node.down()
        cluster.down(force=True)
    print(f"base image reference: {PROJECT_BASE.reference}")


if __name__ == "__main__":
    main()
