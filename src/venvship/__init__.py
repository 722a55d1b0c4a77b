"""venvship: Python virtualenvs built once as verified OCI artifacts, installed offline and atomically.

The target side (``venv-pull``) imports only the standard library, so this module stays light:
build-side names are imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "build_recipe", "load_recipe"]


def __getattr__(name: str) -> Any:
    # The build side needs `packaging`; bare target hosts must be able to import this package.
    if name == "load_recipe":
        from .recipe.recipefile import load_recipe

        return load_recipe
    if name == "build_recipe":
        from .builder.recipebuild import build_recipe

        return build_recipe
    raise AttributeError(name)
