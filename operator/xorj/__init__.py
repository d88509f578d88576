"""xorj-operator: exactly-once copy trading on Solana, run by a Kubernetes operator.

``xorj`` is split over two distributions of this repository: the product (``operator/xorj``, what
the image ships) and the development tools (``devtools/xorj``: ``xorj.devenv``, ``xorj.chaos``).
The product's directory is the regular package; the development tools add their subpackages as a
portion without an ``__init__.py``, found here on ``sys.path`` (pkgutil's extend_path), so
``xorj.devenv`` imports the same way from an installed wheel, an editable install or PYTHONPATH.
"""

import os
import pkgutil

__version__ = "0.1.0"


def _with_portions(own: list[str], name: str) -> list[str]:
    """Our directory plus every namespace portion of ``xorj`` on sys.path, but no other checkout's
    whole package: its modules would stand in for ones this checkout does not have."""
    extended = pkgutil.extend_path(own, name)
    return [p for p in extended if p in own or not os.path.isfile(os.path.join(p, "__init__.py"))]


__path__ = _with_portions(__path__, __name__)
