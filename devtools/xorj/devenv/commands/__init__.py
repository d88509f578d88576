"""``xorj dev ...``: the local environment's commands. The ``xorj`` command finds the group through
the ``xorj.commands`` entry point that devtools/pyproject.toml registers."""
