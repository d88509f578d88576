"""A development runtime beside kwok: every executor pod on the local cluster is a real local process.

kwok marks pods Running but runs nothing. This runtime stands in for the kubelet's container part
for the pods it is pointed at: it watches them, and for each pod scheduled to a node and not being
deleted it starts the pod's first container's command and args as a local process, with the pod's
environment (``env`` with values, ConfigMap and Secret key references and ``metadata.*`` field
references; ``envFrom`` ConfigMaps and Secrets) and its Secret/ConfigMap volumes written to a private
directory (paths under a mount are rewritten to it). When the pod goes away, or gets a deletion
timestamp, the process gets SIGTERM, then SIGKILL after the pod's grace period: terminating a pod
terminates its executor. A process that exits while its pod remains is restarted with back-off, as
``restartPolicy: Always`` does.

What differs from a kubelet, on purpose: there is no network namespace, so each process gets its own
free loopback port through ``XORJ_HTTP_HOST``/``XORJ_HTTP_PORT`` (two pods may not both bind the
container's port on one host), and the image is not used: commands run from the installed package.

Run it as ``python -m xorj.devenv.pod_runtime --kubeconfig K --state-dir D --selector S``.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xorj.devenv.files import write_private

log = logging.getLogger("xorj.devenv.pod_runtime")

DEFAULT_SELECTOR = "app.kubernetes.io/component=executor"
POLL_SECONDS = 1.0
MAX_GRACE_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class PodProcess:
    """The local process standing for one pod."""

    uid: str
    namespace: str
    name: str
    grace_seconds: float
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    log_path: Path | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class PodSpecError(Exception):
    """The pod asks for something this runtime cannot provide (a missing ConfigMap key, ...)."""


def resolve_program(command: list[str]) -> list[str]:
    """The pod's command, with ``xorj`` mapped to this environment's installed console script."""
    if not command:
        raise PodSpecError("the container has no command: the image's entrypoint is `xorj`")
    if command[0] == "xorj":
        installed = Path(sys.executable).parent / "xorj"
        return [str(installed) if installed.exists() else shutil.which("xorj") or "xorj", *command[1:]]
    return command


class Resolver:
    """Reads what a pod spec references (ConfigMaps, Secrets) through the Kubernetes API."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def config_map(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_config_map(name, namespace).data or {})

    def secret(self, namespace: str, name: str) -> dict[str, bytes]:
        data = self.core.read_namespaced_secret(name, namespace).data or {}
        return {k: base64.b64decode(v) for k, v in data.items()}


def field_ref(pod: dict[str, Any], path: str) -> str:
    meta = pod["metadata"]
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": pod["spec"].get("nodeName"),
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
              "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
    if path in simple:
        return simple[path] or ""
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return (meta.get(source) or {}).get(path[len(prefix) + 2:-2], "")
    raise PodSpecError(f"fieldRef {path!r} is not supported by the development runtime")


def pod_environment(pod: dict[str, Any], resolver: Resolver, mounts: dict[str, Path]) -> dict[str, str]:
    """The container's environment as the kubelet would build it (envFrom first, env overrides)."""
    namespace = pod["metadata"]["namespace"]
    container = pod["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            try:
                env.update({prefix + k: v for k, v in resolver.config_map(namespace, ref["name"]).items()})
            except Exception as exc:  # noqa: BLE001 - optional refs may be absent
                if not ref.get("optional"):
                    raise PodSpecError(f"envFrom ConfigMap {ref['name']}: {exc}") from exc
        if "secretRef" in source:
            ref = source["secretRef"]
            try:
                env.update({prefix + k: v.decode() for k, v in resolver.secret(namespace, ref["name"]).items()})
            except Exception as exc:  # noqa: BLE001
                if not ref.get("optional"):
                    raise PodSpecError(f"envFrom Secret {ref['name']} could not be read") from exc
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = item["value"]
            continue
        source = item.get("valueFrom") or {}
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = resolver.config_map(namespace, ref["name"])
            if ref["key"] not in data:
                raise PodSpecError(f"env {name}: ConfigMap {ref['name']} has no key {ref['key']}")
            env[name] = data[ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = resolver.secret(namespace, ref["name"])
            if ref["key"] not in data:
                # the message names the Secret and key, never a value
                raise PodSpecError(f"env {name}: Secret {ref['name']} has no key {ref['key']}")
            env[name] = data[ref["key"]].decode()
        elif "fieldRef" in source:
            env[name] = field_ref(pod, source["fieldRef"]["fieldPath"])
        else:
            raise PodSpecError(f"env {name}: unsupported valueFrom {sorted(source)}")
    # paths inside a mount point at the files this runtime wrote for the pod
    for key, value in env.items():
        for mount_path, local in mounts.items():
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                env[key] = value = str(local) + value[len(mount_path.rstrip("/")):]
            elif "=" + mount_path.rstrip("/") + "/" in value:  # inside a DSN: ...&sslrootcert=/mount/ca.crt
                env[key] = value = value.replace("=" + mount_path.rstrip("/") + "/", "=" + str(local) + "/")
    return env


def materialize_volumes(pod: dict[str, Any], resolver: Resolver, root: Path) -> dict[str, Path]:
    """Write the pod's Secret/ConfigMap/emptyDir volumes under ``root``; mount path -> local dir."""
    namespace = pod["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    mounts: dict[str, Path] = {}
    for mount in pod["spec"]["containers"][0].get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise PodSpecError(f"volumeMount {mount['name']} has no volume")
        local = root / "volumes" / mount["name"]
        local.mkdir(parents=True, exist_ok=True, mode=0o700)
        optional = bool((volume.get("secret") or volume.get("configMap") or {}).get("optional"))
        if "secret" in volume:
            try:
                files: dict[str, bytes] = resolver.secret(namespace, volume["secret"]["secretName"])
            except Exception:  # noqa: BLE001 - an optional Secret may be absent
                if not optional:
                    raise
                files = {}
        elif "configMap" in volume:
            files = {k: v.encode() for k, v in resolver.config_map(namespace, volume["configMap"]["name"]).items()}
        elif "emptyDir" in volume:
            files = {}
        else:
            raise PodSpecError(f"volume {mount['name']}: only secret, configMap and emptyDir are supported")
        items = (volume.get("secret") or volume.get("configMap") or {}).get("items")
        selected = ({i["path"]: files[i["key"]] for i in items if i["key"] in files or not optional}
                    if items else files)
        for relative, content in selected.items():
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            write_private(target, content)
        mounts[mount["mountPath"]] = local
    return mounts


class PodRuntime:
    """Keeps one local process per matching pod, started and stopped as the pods come and go."""

    def __init__(self, core: Any, state_dir: Path, selector: str = DEFAULT_SELECTOR,
                 namespace: str | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.core = core
        self.resolver = Resolver(core)
        self.state_dir = state_dir
        self.selector = selector
        self.namespace = namespace
        self.extra_env = dict(extra_env or {})
        self.pods: dict[str, PodProcess] = {}
        self.stopping = threading.Event()

    # -- one reconcile pass -----------------------------------------------------------------------

    def list_pods(self) -> list[dict[str, Any]]:
        if self.namespace:
            result = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector,
                                                   _preload_content=False)
        else:
            result = self.core.list_pod_for_all_namespaces(label_selector=self.selector,
                                                           _preload_content=False)
        return json.loads(result.data)["items"]

    def reconcile(self, pods: list[dict[str, Any]]) -> None:
        wanted = {}
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") or not pod["spec"].get("nodeName"):
                continue
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            wanted[meta["uid"]] = pod
        for uid in [u for u in self.pods if u not in wanted]:
            self.stop_pod(self.pods.pop(uid), reason="pod gone or terminating")
        now = time.monotonic()
        for uid, pod in wanted.items():
            entry = self.pods.get(uid)
            if entry is None:
                entry = PodProcess(uid, pod["metadata"]["namespace"], pod["metadata"]["name"],
                                   min(float(pod["spec"].get("terminationGracePeriodSeconds", 30)),
                                       MAX_GRACE_SECONDS))
                self.pods[uid] = entry
            if entry.process is not None and entry.process.poll() is None:
                continue
            if entry.process is not None:  # it exited on its own: restart with back-off
                code = entry.process.returncode
                entry.process = None
                entry.restarts += 1
                delay = min(MAX_BACKOFF_SECONDS, 2 ** min(entry.restarts, 5))
                entry.next_start = now + delay
                log.warning("executor process exited; restarting", extra={
                    "pod": entry.key, "exit_code": code, "restarts": entry.restarts, "delay_seconds": delay})
            if now >= entry.next_start:
                self.start_pod(entry, pod)
        self.write_state()

    # -- processes --------------------------------------------------------------------------------

    def start_pod(self, entry: PodProcess, pod: dict[str, Any]) -> None:
        pod_dir = self.state_dir / "pods" / f"{entry.namespace}_{entry.name}_{entry.uid[:8]}"
        pod_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        container = pod["spec"]["containers"][0]
        try:
            mounts = materialize_volumes(pod, self.resolver, pod_dir)
            env = pod_environment(pod, self.resolver, mounts)
            argv = resolve_program(list(container.get("command") or ["xorj"]) + list(container.get("args") or []))
        except PodSpecError as exc:
            entry.next_start = time.monotonic() + 5
            log.error("cannot start pod", extra={"pod": entry.key, "problem": str(exc)})
            return
        base = {k: v for k, v in os.environ.items() if not k.startswith("XORJ_") and k != "KUBECONFIG"}
        full_env = {**base, **env, **self.extra_env,
                    # no network namespace: each pod gets its own free loopback port
                    "XORJ_HTTP_HOST": "127.0.0.1", "XORJ_HTTP_PORT": "0",
                    "XORJ_HTTP_PORT_FILE": str(pod_dir / "http-port"),
                    "HOSTNAME": entry.name}
        entry.log_path = pod_dir / "executor.log"
        with open(entry.log_path, "ab") as out:
            entry.process = subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=pod_dir, start_new_session=True)
        log.info("executor process started", extra={"pod": entry.key, "pid": entry.process.pid,
                                                     "command": " ".join(argv[:2]), "log": str(entry.log_path)})

    def stop_pod(self, entry: PodProcess, reason: str) -> None:
        process = entry.process
        if process is None or process.poll() is not None:
            return
        log.info("stopping executor process", extra={"pod": entry.key, "pid": process.pid, "reason": reason})
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=entry.grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop_all(self) -> None:
        threads = [threading.Thread(target=self.stop_pod, args=(e, "runtime stopping")) for e in self.pods.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.pods.clear()
        self.write_state()

    def write_state(self) -> None:
        """pods.json: which process stands for which pod (read by `xorj dev up` and the tests)."""
        state = {
            e.key: {"uid": e.uid, "pid": e.process.pid if e.process and e.process.poll() is None else None,
                    "restarts": e.restarts, "log": str(e.log_path) if e.log_path else None}
            for e in self.pods.values()
        }
        target = self.state_dir / "pods.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(target)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.reconcile(self.list_pods())
            except Exception as exc:  # noqa: BLE001 - the API may blip; keep the processes running
                log.warning("listing pods failed", extra={"problem": str(exc)[:300]})
            self.stopping.wait(POLL_SECONDS)
        self.stop_all()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m xorj.devenv.pod_runtime", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--selector", default=DEFAULT_SELECTOR)
    parser.add_argument("--namespace", default=None)
    args = parser.parse_args(argv)

    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    from kubernetes import client, config

    config.load_kube_config(config_file=args.kubeconfig)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    runtime = PodRuntime(client.CoreV1Api(), args.state_dir, args.selector, args.namespace)

    def on_signal(signum: int, _frame: Any) -> None:
        runtime.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("pod runtime started", extra={"selector": args.selector, "namespace": args.namespace or "*"})
    runtime.run()
    log.info("pod runtime stopped")


if __name__ == "__main__":
    main()
