"""``xorj crds``: write the CRD YAML files generated from the models, or check them (``--check``)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from xorj.controller import crdgen


def default_crds_dir() -> Path:
    # operator/xorj/commands/crds.py -> repository root / crds
    return Path(__file__).resolve().parents[3] / "crds"


def drift(directory: Path) -> dict[str, str]:
    """file name -> unified diff, for every CRD file that differs from what the models generate."""
    out: dict[str, str] = {}
    for name, text in crdgen.rendered_files().items():
        path = directory / name
        current = path.read_text() if path.exists() else ""
        if current != text:
            out[name] = "".join(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    fromfile=str(path),
                    tofile=f"{name} (generated)",
                )
            )
    return out


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the CRD files live (default: the repository's crds/).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files drift from the models.")
def crds(directory: Path | None, check: bool) -> None:
    """Generate crds/*.yaml from the pydantic models (the single source of both CRDs)."""
    directory = directory or default_crds_dir()
    differences = drift(directory)
    if check:
        if differences:
            for diff in differences.values():
                sys.stdout.write(diff)
            raise click.ClickException(
                f"{len(differences)} CRD file(s) drift from the models: "
                f"{', '.join(sorted(differences))}; run `xorj crds` to regenerate"
            )
        click.echo(f"CRDs up to date in {directory}")
        return
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in crdgen.rendered_files().items():
        path = directory / name
        if name in differences:
            path.write_text(text)
            click.echo(f"wrote {path}")
        else:
            click.echo(f"unchanged {path}")
