"""``xorj chaos``: the chaos suite (Chaos Toolkit experiments in experiments/).

``xorj chaos run [NAME ...]`` runs the named experiments, or a set (:mod:`xorj.chaos.sets`):
``--set ci`` (the default: those tagged ``ci``, as written) or ``--set full`` (every experiment
runnable on the target, scaled to at least 500 trades each; ``--trades N`` for more); ``--all``:
every runnable one, as written. Cluster ones need ``--env`` pointing at ``xorj dev up``'s demo.json
or kind's settings in XORJ_CHAOS_* variables. Each runs with ``chaos run
--rollback-strategy=always``, writing ``journals/NAME.json``, ``run.json`` (the set, the trades, when
and on what machine), ``report.md``/``report.html`` and a timeline per experiment (``pictures/NAME.svg``)
in ``--out``. Without ``--env`` it starts the
local chaos environment for the run and stops it afterwards. Exit status 1 if any experiment failed
or deviated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from xorj.chaos.sets import DEFAULT_SET, SETS
from xorj.devenv.repository import repository_root

EXPERIMENTS = repository_root() / "experiments"


def _experiments(directory: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def _say(message: str) -> None:
    click.echo(f"[chaos] {message}", err=True)


def _ha_ledger_target(env_file: Path | None) -> bool:
    """The target's ledger is a Patroni HA ledger: a demo.json of `xorj dev up --ledger ha` or
    `--ledger external-ha`, or XORJ_CHAOS_LEDGER_HA=1 (a cluster with the chart's ledger.mode=ha, or an
    external one located by the XORJ_CHAOS_LEDGER_* settings of xorj.chaos.ledger_failover)."""
    from xorj.devenv.ha_ledger import HA_MODES

    if os.environ.get("XORJ_CHAOS_LEDGER_HA", "") in ("1", "true", "yes"):
        return True
    if env_file is None or env_file.name != "demo.json":
        return False
    try:
        return json.loads(env_file.read_text()).get("ledger_mode") in HA_MODES
    except (OSError, ValueError):
        return False


@click.group()
def chaos() -> None:
    """Chaos experiments against the local environment or a cluster, and their report."""


@chaos.command("list")
@click.option("--experiments", "directory", type=click.Path(file_okay=False, path_type=Path), default=EXPERIMENTS)
def list_(directory: Path) -> None:
    """The experiments, their tags and titles."""
    for name, doc in _experiments(directory).items():
        click.echo(f"{name:32} [{','.join(t for t in doc.get('tags', []) if t != 'xorj')}] {doc.get('title', '')}")


@chaos.command()
@click.argument("names", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Every experiment runnable on the target, as written.")
@click.option("--set", "set_name", type=click.Choice(sorted(SETS)), default=DEFAULT_SET, show_default=True,
              help="ci: the experiments tagged `ci`, as written; full: every experiment runnable on the target, "
                   "at least 500 trades each.")
@click.option("--trades", type=int, default=None,
              help="Trades per experiment (the set's minimum or more); the loads, fault windows and time limits scale with it.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("chaos-results"),
              show_default=True, help="Journals, logs and the report go here.")
@click.option("--env", "env_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A running environment: the chaos env's env.json or `xorj dev up`'s demo.json.")
@click.option("--replicas", default=2, show_default=True, help="Executor replicas of a local environment.")
@click.option("--experiments", "directory", type=click.Path(file_okay=False, path_type=Path), default=EXPERIMENTS)
def run(names: tuple[str, ...], run_all: bool, set_name: str, trades: int | None, out: Path, env_file: Path | None,
        replicas: int, directory: Path) -> None:
    """Run experiments (default: the `ci` set) and write journals and a report."""
    from xorj.chaos import report, sets
    from xorj.chaos.localenv import LocalChaosEnv
    from xorj.errors import InvalidInputError

    available = _experiments(directory)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise click.BadParameter(f"unknown experiment(s) {', '.join(unknown)}; `xorj chaos list` shows them",
                                 param_hint="NAMES")
    env_file = env_file or (Path(os.environ["XORJ_CHAOS_ENV"]) if os.environ.get("XORJ_CHAOS_ENV") else None)
    cluster_target = env_file is not None and env_file.name == "demo.json" or bool(os.environ.get("XORJ_CHAOS_NAMESPACE"))
    if run_all and set_name != DEFAULT_SET:
        raise click.UsageError("--all and --set: give one (--set full runs every runnable experiment, scaled)")
    chaos_set = sets.get_set(set_name)
    selector = sets.ChaosSet("all", "every runnable experiment, as written", every_runnable=True) if run_all else chaos_set
    ha_ledger = _ha_ledger_target(env_file)
    chosen = list(names) if names else sets.select(selector, available, cluster_target, ha_ledger)
    left_out = [n for n in sets.needing_ha_ledger(available) if n not in chosen]
    if left_out and not names:
        _say(f"not on this target: {', '.join(left_out)} (they need a Patroni HA ledger: run them against "
             "`xorj dev up --ledger ha` or `--ledger external-ha`, or a cluster with one and XORJ_CHAOS_LEDGER_HA=1)")
    if not chosen:
        raise click.UsageError("no experiment selected")
    try:
        planned = sets.plan(chaos_set, chosen, available, trades)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--trades") from None
    chaos_bin = shutil.which("chaos")
    if chaos_bin is None:
        raise click.ClickException("the `chaos` command (chaostoolkit) is not installed: pip install -e devtools (scripts/bootstrap does)")
    out.mkdir(parents=True, exist_ok=True)
    journals = out / "journals"
    journals.mkdir(exist_ok=True)
    local_env = None
    if env_file is None:
        local_env = LocalChaosEnv(out.resolve() / "env", progress=_say)
        local_env.up(replicas=replicas)
        env_file = local_env.path
    failures = []
    meta = report.run_metadata(chaos_set.name if not run_all else "all", planned,
                               target="cluster" if cluster_target else "local")
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    try:
        from xorj.chaos.target import resolve

        # chaostoolkit-kubernetes activities read ${namespace} and KUBECONFIG from the environment
        base_env = {**os.environ, "XORJ_CHAOS_ENV": str(env_file.resolve())}
        target = resolve({"xorj_env": str(env_file.resolve())})
        if target.namespace and not base_env.get("XORJ_CHAOS_NAMESPACE"):
            base_env["XORJ_CHAOS_NAMESPACE"] = target.namespace
        if target.kubeconfig and not base_env.get("KUBECONFIG"):
            base_env["KUBECONFIG"] = target.kubeconfig
        for index, item in enumerate(planned, 1):
            name = item.name
            run_id = f"{name}-{int(time.time())}"
            env = {**base_env, "XORJ_CHAOS_RUN_ID": run_id, sets.TRADE_SCALE_ENV: repr(item.trade_scale)}
            _say(f"{index}/{len(planned)} {name}"
                 + (f" ({item.trades} trades, scale {item.trade_scale:.2f})" if item.trade_scale != 1 else ""))
            started = time.monotonic()
            with open(out / f"{name}.log", "wb") as log:
                code = subprocess.run([chaos_bin, "--no-version-check", "--log-file", str(out / f"{name}.chaostoolkit.log"),
                                       "run", str(directory / f"{name}.json"), "--journal-path", str(journals / f"{name}.json"),
                                       "--rollback-strategy=always"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                      check=False).returncode
            journal_path = journals / f"{name}.json"
            row = report.row_from_journal(journal_path) if journal_path.exists() else None
            # chaostoolkit exits 0 when the hypothesis BEFORE the method is not met (status "completed",
            # not deviated): a system already broken would pass. Judge from the journal as well.
            if code == 0 and (row is None or not row.passed):
                code = 1
            verdict = "passed" if code == 0 else "FAILED"
            _say(f"    {verdict} in {time.monotonic() - started:.0f}s"
                 + (f": trades {row.trades}, confirmed {row.confirmed}, failed {row.failed}, duplicates {row.duplicates}, "
                    f"orphans {row.orphans}, recovered after {row.recover_s}s" if row else ""))
            if code != 0:
                failures.append(name)
    finally:
        if local_env is not None:
            local_env.down()
        meta["finished_at"] = report.utc_now()
        (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    rows = report.write(journals, out, report.describe_run(meta))
    click.echo(report.markdown(rows))
    click.echo(f"journals in {journals}, report in {out / 'report.md'} and {out / 'report.html'}, "
               f"timelines in {out / 'pictures'}")
    if failures:
        raise click.ClickException(f"{len(failures)} experiment(s) failed or deviated: {', '.join(failures)}")


@chaos.command("report")
@click.argument("journal_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table to this file (e.g. docs/chaos-results.md).")
@click.option("--pictures", "pictures_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the timelines (SVG) here, shown below the table of --markdown's file (e.g. docs/chaos).")
def report_(journal_dir: Path, markdown_path: Path | None, pictures_dir: Path | None) -> None:
    """Rebuild the report (report.md, report.html, pictures/NAME.svg beside JOURNAL_DIR) from a
    directory of journals."""
    from xorj.chaos import report

    meta = report.read_run_metadata(journal_dir.parent)
    preamble = report.describe_run(meta) if meta else ""
    rows = report.write(journal_dir, journal_dir.parent, preamble)
    links = None
    if pictures_dir is not None:
        drawn, note = report.draw(journal_dir, pictures_dir)
        if note:
            raise click.ClickException(note)
        base = (markdown_path.parent if markdown_path else Path.cwd()).resolve()
        links = {timeline.scenario: os.path.relpath(path.resolve(), base) for timeline, path in drawn}
    text = report.markdown(rows, preamble, links)
    if markdown_path:
        markdown_path.write_text(text)
    click.echo(text)


@chaos.group()
def env() -> None:
    """The local chaos environment (Postgres, chain, TCP proxy, executor pool) for manual runs."""


@env.command("up")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path), default=Path("chaos-env"), show_default=True)
@click.option("--replicas", default=2, show_default=True)
def env_up(root: Path, replicas: int) -> None:
    from xorj.chaos.localenv import LocalChaosEnv
    from xorj.errors import XorjError

    try:
        LocalChaosEnv(root.resolve(), progress=_say).up(replicas=replicas)
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"export XORJ_CHAOS_ENV={(root / 'env.json').resolve()}")


@env.command("down")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path), default=Path("chaos-env"), show_default=True)
def env_down(root: Path) -> None:
    from xorj.chaos.localenv import LocalChaosEnv

    LocalChaosEnv(root.resolve(), progress=_say).down()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(chaos())
