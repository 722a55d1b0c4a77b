"""The role's variable values, checked and turned into recipe values, one shape at a time
(string, list, pip arguments, environment, choice, facts), collecting every problem on the way.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..errors import RecipeError
from .requirements import Req, parse_line
from .tablereader import did_you_mean

# Lists whose items are PEP 508 requirements (constraints: unless they are pip options).
REQUIREMENT_LISTS = frozenset(
    (
        "venv_pip_packages",
        "venv_default_pip_packages",
        "venv_build_requirements",
        "venv_build_requirements_extra",
        "venv_build_constraints",
        "venv_build_global_constraints",
    )
)


def is_template(text: str) -> bool:
    """Return whether ``text`` still holds Jinja that Ansible would have rendered."""
    return "{{" in text or "{%" in text


class Importer:
    """The recipe tables being filled from one variables mapping, and a converter per shape of value.

    Problems and warnings are collected, one line each, not raised.
    """

    def __init__(self, *, keep_templates: bool) -> None:
        self.keep_templates = keep_templates
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.tables: dict[str, dict[str, Any]] = {"venv": {}, "venv.build": {}, "venv.install": {}}
        self.facts: list[dict[str, Any]] = []

    def templated(self, where: str, value: str) -> bool:
        """Record a Jinja value (a fault, or a warning with --keep-templates); return whether it is one."""
        if not is_template(value):
            return False
        if self.keep_templates:
            self.warnings.append(f"template kept: {where}: {value!r}: fill it in before building")
        else:
            self.problems.append(
                f"{where}: still holds Jinja: {value!r} (fill it in, or pass --keep-templates)"
            )
        return True

    def string(self, var: str, value: Any) -> str | None:
        if not isinstance(value, str):
            self.problems.append(f"{var}: must be a string, not {type(value).__name__}")
            return None
        return value.strip()

    def str_list(self, var: str, value: Any) -> list[str] | None:
        if not isinstance(value, list):
            self.problems.append(f"{var}: must be a list of strings, not {type(value).__name__}")
            return None
        out = []
        for i, item in enumerate(value):
            if item is None:
                continue  # the role's `select` drops empty entries
            if not isinstance(item, str):
                self.problems.append(f"{var}[{i}]: must be a string, not {type(item).__name__}")
                continue
            item = item.strip()
            if not item:
                continue  # an empty item must never become a line
            if not self.templated(f"{var}[{i}]", item) and var in REQUIREMENT_LISTS:
                item = self.requirement_line(f"{var}[{i}]", item)
            out.append(item)
        return out

    def requirement_line(self, where: str, text: str) -> str:
        """Return one line of a requirement or constraint list as a recipe keeps it: every form a pip
        requirements file takes (comments, ``-c``/``-r`` files, options); requirements normalised."""
        try:
            parsed = parse_line(text, where)
        except RecipeError as exc:
            self.problems.append(str(exc))
            return text
        # The role writes each item as one line of a pip file: comments and options stay as given.
        return parsed.line if isinstance(parsed, Req) else text

    def args(self, var: str, value: Any) -> list[str] | str | None:
        if isinstance(value, list):
            return self.str_list(var, value)
        text = self.string(var, value)
        if text is None:
            return None
        if self.templated(var, text):
            return text  # splitting `{{ a | default('') }}` would scatter it; the user fills it in
        try:
            return shlex.split(text)
        except ValueError as exc:
            self.problems.append(f"{var}: cannot split {text!r} into arguments: {exc}")
            return None

    def env(self, var: str, value: Any) -> dict[str, str] | None:
        if not isinstance(value, dict):
            self.problems.append(f"{var}: must be a mapping, not {type(value).__name__}")
            return None
        out = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                # Ansible would pass True as "True"; name it rather than guess what was meant.
                self.problems.append(f"{var}.{k}: must be a string or number, not {type(v).__name__}")
                continue
            self.templated(f"{var}.{k}", str(v))
            out[str(k)] = str(v)
        return out

    def choice(self, var: str, value: Any, choices: tuple[str, ...]) -> str | None:
        text = self.string(var, value)
        if text is None or self.templated(var, text):
            return text
        if text not in choices:
            hint = did_you_mean(text, choices)
            self.problems.append(f"{var}: must be one of {', '.join(choices)}, not {text!r}{hint}")
            return None
        return text

    def fact_list(self, value: Any, dest: str) -> None:
        if not isinstance(value, list):
            self.problems.append(f"venv_facts_when_changed: must be a list, not {type(value).__name__}")
            return
        for i, item in enumerate(value):
            where = f"venv_facts_when_changed[{i}]"
            if not isinstance(item, dict):
                self.problems.append(f"{where}: must be a mapping with section, option and value")
                continue
            for key in item:
                if key not in ("section", "option", "value"):
                    hint = did_you_mean(str(key), ("section", "option", "value"))
                    self.problems.append(f"{where}.{key}: unknown key{hint}")
            fact: dict[str, Any] = {"file": dest}
            for key in ("section", "option", "value"):
                v = item.get(key)
                if v is None or isinstance(v, (list, dict)):
                    self.problems.append(
                        f"{where}.{key}: is required and must be a string, number or boolean"
                    )
                    continue
                if isinstance(v, str):
                    self.templated(f"{where}.{key}", v)
                fact[key] = v
            self.facts.append(fact)
