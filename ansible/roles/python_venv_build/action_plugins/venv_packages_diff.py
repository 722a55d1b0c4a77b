"""Show, in diff mode, what a new venv generation changes: its packages as ``name==version`` lines.

Runs on the controller only, on the two package lists it is given: ``venv-pull status DEST
--packages --json`` before the install, and after it (or, with ``--check``, the ``lock`` of
``venv-pull install --check --json``). It writes nothing; it reports ``changed`` when the lists
differ, because Ansible shows a diff only for a changed result.
"""

from __future__ import annotations

import re
from typing import Any

from ansible.plugins.action import ActionBase


def _versions(packages: Any) -> dict[str, str]:
    """Return ``{name: version}`` of a list of ``{name, version}``, names normalized (PEP 503).

    A venv's METADATA and an artifact's lock may spell one distribution differently (``PyMySQL``,
    ``pymysql``).
    """
    return {re.sub(r"[-_.]+", "-", str(p["name"])).lower(): str(p["version"]) for p in packages or []}


def _text(versions: dict[str, str]) -> str:
    return "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))


class ActionModule(ActionBase):  # type: ignore[misc]  # Ansible's own name for an action plugin
    """``venv_packages_diff: {dest, before, after}``, ``before`` and ``after`` lists of packages."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        dest = self._task.args.get("dest", "")
        old = _versions(self._task.args.get("before"))
        new = _versions(self._task.args.get("after"))
        changes = [
            f"{name} {old.get(name, '(none)')} -> {new.get(name, '(none)')}"
            for name in sorted(old.keys() | new.keys())
            if old.get(name) != new.get(name)
        ]
        result.update(
            changed=bool(changes),
            msg=f"{dest}: " + (", ".join(changes) or "the same packages"),
            diff={
                "before": _text(old),
                "after": _text(new),
                "before_header": f"{dest} (live venv)",
                "after_header": f"{dest} (new generation)",
            },
        )
        return result
