"""Install pip-args: only harmless options reach pip or uv on a target (#10)."""

from __future__ import annotations

import pytest

from venvship.artifact.pipargs import check_install_pip_args, split_install_pip_args
from venvship.errors import ArtifactError

ALLOWED = [
    ("pip", ["-q", "-vv", "--quiet", "--verbose", "--no-color", "--no-input"]),
    ("pip", ["--no-warn-script-location", "--disable-pip-version-check"]),
    ("pip", ["--progress-bar", "off", "--progress-bar=raw"]),
    ("pip", ["--retries", "3", "--retries=0", "--timeout", "30", "--timeout=2.5"]),
    ("uv", ["-q", "--verbose", "--no-progress", "--link-mode", "copy", "--link-mode=hardlink"]),
    ("pip", []),
]


@pytest.mark.parametrize(("tool", "args"), ALLOWED)
def test_allowed(tool: str, args: list[str]) -> None:
    assert check_install_pip_args(args, tool=tool, where="w") == tuple(args)


REFUSED = [
    (
        "pip",
        ["--no-compile"],
        "w[0]",
        "'--no-compile' is not allowed in install pip-args: use `venv-pull install --no-compile`",
    ),
    (
        "pip",
        ["-q", "--compile"],
        "w[1]",
        "venv-pull compiles bytecode itself; use `venv-pull install --no-compile`",
    ),
    ("uv", ["--compile-bytecode"], "w[0]", "use `venv-pull install --no-compile`"),
    (
        "pip",
        ["--target", "/etc"],
        "w[0]",
        "'--target' is not allowed in install pip-args: use `venv-pull install --dest`",
    ),
    ("pip", ["--target=/etc"], "w[0]", "use `venv-pull install --dest`"),
    ("pip", ["-t/etc"], "w[0]", "use `venv-pull install --dest`"),
    ("pip", ["--prefix", "/usr"], "w[0]", "use `venv-pull install --dest`"),
    ("pip", ["--root=/"], "w[0]", "use `venv-pull install --dest`"),
    ("pip", ["--user"], "w[0]", "use `venv-pull install --dest`"),
    ("uv", ["--python", "/tmp/evil"], "w[0]", "use `venv-pull install --dest`"),
    (
        "pip",
        ["--log", "/etc/shadow"],
        "w[0]",
        "'--log' is not allowed in install pip-args: use `venv-pull -v`",
    ),
    ("pip", ["--keyring-provider", "x"], "w[0]", "not allowed in install pip-args (allowed: -q, -v, --quiet"),
    ("pip", ["--report", "/etc/x"], "w[0]", "'--report' is not allowed"),
    ("pip", ["--dry-run"], "w[0]", "'--dry-run' is not allowed"),
    ("pip", ["--src", "/x"], "w[0]", "'--src' is not allowed"),
    ("pip", ["--index-url", "http://evil/simple"], "w[0]", "belong in [venv.build] pip-args"),
    (
        "pip",
        ["-f", "http://evil/"],
        "w[0]",
        "'-f' is not allowed in install pip-args: venv-pull installs offline",
    ),
    ("uv", ["--no-deps"], "w[0]", "with --no-deps and --require-hashes"),
    ("pip", ["-U"], "w[0]", "use `venv-pull install --rebuild`"),
    ("pip", ["-r", "x.txt"], "w[0]", "use the recipe's packages and constraints"),
    ("pip", ["--link-mode", "copy"], "w[0]", "'--link-mode' is a uv option, and this venv installs with pip"),
    ("pip", ["--quie"], "w[0]", "'--quie' is not allowed"),  # pip would take the abbreviation
    ("pip", ["evil-package"], "w[0]", "'evil-package' is not an option"),
    ("pip", ["--timeout", "abc"], "w[1]", "'abc' is not a valid value for --timeout"),
    ("pip", ["--retries=-1"], "w[0]", "'-1' is not a valid value for --retries"),
    ("pip", ["--progress-bar", "--target"], "w[1]", "'--target' is not a valid value for --progress-bar"),
    ("pip", ["--timeout"], "w[0]", "--timeout needs a value"),
    ("pip", ["--quiet=1"], "w[0]", "--quiet takes no value"),
    (
        "uv",
        ["--retries", "3"],
        "w[0]",
        "'--retries' is a pip option, and this venv installs with uv (uv's allowed options: -q, -v, --quiet",
    ),
    ("uv", ["--link-mode", "symlink"], "w[1]", "'symlink' is not a valid value for --link-mode"),
]


@pytest.mark.parametrize(("tool", "args", "where", "says"), REFUSED, ids=lambda v: str(v))
def test_refused_naming_the_argument(tool: str, args: list[str], where: str, says: str) -> None:
    with pytest.raises(ArtifactError) as info:
        check_install_pip_args(args, tool=tool, where="w")
    message = str(info.value)
    assert message.startswith(f"{where}: ") and says in message, message


def test_split_drops_what_is_refused_with_its_value() -> None:
    kept, dropped = split_install_pip_args(
        ["--no-compile", "-q", "--index-url", "http://x/simple", "--target=/t", "--timeout", "5", "--user"],
        tool="pip",
    )
    assert kept == ["-q", "--timeout", "5"]
    assert [text for text, _ in dropped] == [
        "--no-compile",
        "--index-url http://x/simple",
        "--target=/t",
        "--user",
    ]
    assert dropped[0][1].endswith("use `venv-pull install --no-compile`")
