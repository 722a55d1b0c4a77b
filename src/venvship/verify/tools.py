"""The installer-tool wheels venv-pull may run: the pip and uv wheels it pins, or ones the operator
allows (``--allow-tool``). The artifact names its install tool; it never chooses what runs.
"""

from __future__ import annotations

from typing import Collection, Mapping

from ..artifact.documents import VenvConfig, Wheel
from ..errors import InstallError

# The pip and uv wheels venvship pins (builder/pins.py), by sha256, as PyPI publishes them.
PINNED: Mapping[str, str] = {
    "f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13": "pip-26.3-py3-none-any.whl",
    "bdb1b08f4274833d62c1aa29e20907365a2ceb950410df15fc9521bad440122b": "pip-26.0.1-py3-none-any.whl",
    "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19": "uv-0.13.9 manylinux_2_17_x86_64",
    "2c45530751517d6c3bbc69a19473f6effe47cce047bede01ffd8af7ea7b36b25": "uv-0.13.9 musllinux_1_1_x86_64",
    "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe": "uv-0.13.9 manylinux_2_17_aarch64",
    "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375": "uv-0.13.9 manylinux_2_28_aarch64",
    "c5dbdb7c8737cd183a9dce95b39cfd1f3d54ec2a27a1bb58f160293f9ba2c805": "uv-0.13.9 manylinux_2_17_ppc64le",
    "a6e845f387e4ed55bb59342957a9179e24a631fcc7668bda3426ae1cef8ed4b9": "uv-0.13.9 manylinux_2_17_s390x",
    "6b0c7b9f47a5d011939d61e324d3fe18a8bc155d8dd53add738709a92f290a7c": "uv-0.13.9 manylinux_2_31_riscv64",
    "16963d19594e18d746a70c7fce82237bde4f2cac4cfcf0ca2b84796fe9d0c6e9": "uv-0.13.9 manylinux_2_17_armv7l",
}


def tool_wheel(config: VenvConfig, name: str, *, allowed: Collection[str] = ()) -> Wheel:
    """Return the artifact's ``name`` wheel if venv-pull may run it (pinned, or in ``allowed``)."""
    wheel = next((w for w in config.tools if w.name.lower() == name), None)
    if wheel is None:
        raise InstallError(f"artifact {config.name} {config.version}: no {name} wheel among its tools")
    if wheel.sha256 not in PINNED and wheel.sha256 not in allowed:
        raise InstallError(
            f"artifact {config.name} {config.version}: its {wheel.filename} (sha256:{wheel.sha256}) is "
            "not a tool venv-pull pins; allow it with --allow-tool sha256:<hex> if you trust it"
        )
    return wheel
