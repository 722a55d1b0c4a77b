"""Selection for hosts this machine cannot be: an old glibc, musl, other CPU variants (DESIGN §4).

The artifacts are real (written by the build's packaging into an OCI layout) and so is the
index, re-written with the platform and annotations each case needs. Only the Host is made up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping, Sequence

import pytest

from venvship.artifact.documents import (
    ANN_DISTRO,
    ANN_DISTRO_BOUND,
    ANN_GLIBC,
    ANN_PYTHON,
    INDEX_TYPE,
    Descriptor,
    Index,
)
from venvship.artifact.jsondoc import canonical_json
from venvship.errors import InstallError
from venvship.host.info import go_arch
from venvship.oci.layout import Layout
from venvship.oci.reference import parse_ref
from venvship.oci.source import open_source
from venvship.verify.select import ANN_MUSL, BlobReader, Host, Selected, select

from .conftest import Artifacts, Wheels, python_abi

ABI = python_abi(sys.executable)
Entry = tuple[str, Mapping[str, str]]  # ("amd64/v3", annotations)


def _write(artifacts: Artifacts, wheels: Wheels, entries: Sequence[Entry]) -> str:
    """Write one real manifest per entry (distro ``dN-1``), then the index ``demo:hosts`` over them.

    Each entry gives the platform (``arch`` or ``arch/variant``) and the annotations its index
    entry carries beside the Python ABI and the distro key; returns the index's reference.
    """
    layout = Layout(artifacts.root)
    listed = []
    for n, (platform, extra) in enumerate(entries):
        distro = f"d{n}-1"
        artifacts.write([wheels.demo1], distro=distro)
        written = layout.resolve(f"demo:1.0-{distro}-{go_arch()}-{ABI}")
        arch, _, variant = platform.partition("/")
        listed.append(
            Descriptor(
                media_type=written.media_type,
                digest=written.digest,
                size=written.size,
                platform={"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})},
                annotations={ANN_PYTHON: ABI, ANN_DISTRO: distro, **extra},
            )
        )
    raw = canonical_json(Index(manifests=tuple(listed)).to_json())
    digest, _ = layout.put_bytes(raw)
    layout.set_refs({"demo:hosts": Descriptor(media_type=INDEX_TYPE, digest=digest, size=len(raw))})
    return f"oci:{artifacts.root}:demo:hosts"


def _select(reference: str, host: Host, cache: Path) -> Selected:
    ref = parse_ref(reference)
    reader = BlobReader(open_source(ref), Layout(cache))
    try:
        return select(reader, ref, host=host)
    finally:
        reader.close()


def _distro(selected: Selected) -> str:
    return selected.config.platform.distro


def _refusal(reference: str, host: Host, cache: Path) -> str:
    with pytest.raises(InstallError) as err:
        _select(reference, host, cache)
    (line,) = str(err.value).splitlines()
    return line


def glibc_host(glibc: str, *, arch: str = "amd64", variant: str = "") -> Host:
    return Host(architecture=arch, variant=variant, distro="other-1", glibc=glibc)


def test_old_glibc_is_refused_and_the_error_lists_every_offer(
    artifacts: Artifacts, wheels: Wheels, tmp_path: Path
) -> None:
    ref = _write(
        artifacts,
        wheels,
        [
            ("amd64", {ANN_GLIBC: "2.34"}),
            ("amd64", {ANN_GLIBC: "2.28"}),
            ("amd64", {ANN_GLIBC: "2.17"}),
            ("amd64/v3", {ANN_GLIBC: "2.17"}),
            ("arm64", {ANN_MUSL: "1.2"}),
        ],
    )
    # Numbers compare as numbers: 2.31 runs the 2.28 build, the first in the index that fits.
    assert _distro(_select(ref, glibc_host("2.31"), tmp_path / "cache")) == "d1-1"
    line = _refusal(ref, glibc_host("2.5"), tmp_path / "cache")
    assert line.startswith(f"{ref}: no platform fits this host (other-1-amd64, glibc 2.5, python ")
    assert line.split("the index offers: ")[1].split("; ") == [
        f"d0-1-amd64-{ABI} (glibc 2.34)",
        f"d1-1-amd64-{ABI} (glibc 2.28)",
        f"d2-1-amd64-{ABI} (glibc 2.17)",
        f"d3-1-amd64/v3-{ABI} (glibc 2.17)",
        f"d4-1-arm64-{ABI} (musl 1.2)",
    ]
    assert not (tmp_path / "cache").exists()


def musl_host(musl: str) -> Host:
    return Host(architecture="amd64", distro="alpine-3", glibc="", musl=musl)


def test_musl_host_and_an_index_of_glibc_builds_only(
    artifacts: Artifacts, wheels: Wheels, tmp_path: Path
) -> None:
    ref = _write(
        artifacts,
        wheels,
        [("amd64", {ANN_GLIBC: "2.17"}), ("amd64", {ANN_GLIBC: "2.36", ANN_DISTRO_BOUND: "true"})],
    )
    line = _refusal(ref, musl_host("1.2.4"), tmp_path / "cache")
    assert line == (
        f"{ref}: this host runs musl 1.2.4; the index offers only glibc builds:"
        f" d0-1-amd64-{ABI} (glibc 2.17); d1-1-amd64-{ABI} (glibc 2.36)"
    )


def test_musllinux_builds_go_to_musl_hosts_only(artifacts: Artifacts, wheels: Wheels, tmp_path: Path) -> None:
    ref = _write(
        artifacts,
        wheels,
        [("amd64", {ANN_GLIBC: "2.17"}), ("amd64", {ANN_MUSL: "1.2"}), ("amd64", {ANN_MUSL: "1.1"})],
    )
    cache = tmp_path / "cache"
    assert _distro(_select(ref, musl_host("1.2.4"), cache)) == "d1-1"
    assert _distro(_select(ref, musl_host("1.1.24"), cache)) == "d2-1"
    assert _distro(_select(ref, glibc_host("2.36"), cache)) == "d0-1"
    line = _refusal(ref, musl_host("1.0.5"), cache)
    assert "no platform fits this host (alpine-3-amd64, musl 1.0.5, python " in line
    # A glibc build is in the index, so this is not the "only glibc builds" refusal.
    assert "only glibc" not in line


@pytest.mark.parametrize(
    ("host", "entries", "picked"),
    [
        # amd64 levels: the closest one the CPU runs, wherever the index lists it.
        (("amd64", "v3"), ["amd64", "amd64/v2", "amd64/v3", "amd64/v4"], "d2-1"),
        (("amd64", "v4"), ["amd64", "amd64/v2", "amd64/v3"], "d2-1"),
        (("amd64", "v2"), ["amd64/v4", "amd64/v3", "amd64"], "d2-1"),
        (("amd64", ""), ["amd64/v2", "amd64/v1"], "d1-1"),
        # arm64/v8 is arm64.
        (("arm64", ""), ["arm64/v8"], "d0-1"),
        (("arm64", "v8.2"), ["arm64/v8.4", "arm64/v8"], "d1-1"),
        # 32-bit arm: a v7 CPU runs v6 and v5 builds; a plain "arm" is v7.
        (("arm", "v7"), ["arm/v6", "arm/v5"], "d0-1"),
        (("arm", "v7"), ["arm"], "d0-1"),
    ],
)
def test_the_closest_architecture_variant_is_picked(
    artifacts: Artifacts,
    wheels: Wheels,
    tmp_path: Path,
    host: tuple[str, str],
    entries: list[str],
    picked: str,
) -> None:
    ref = _write(artifacts, wheels, [(platform, {ANN_GLIBC: "2.17"}) for platform in entries])
    assert (
        _distro(_select(ref, glibc_host("2.36", arch=host[0], variant=host[1]), tmp_path / "cache")) == picked
    )


@pytest.mark.parametrize(
    ("host", "entries"),
    [
        (("amd64", ""), ["amd64/v2", "amd64/v3"]),  # a baseline CPU runs no v2 build
        (("arm", "v6"), ["arm/v7"]),
        (("arm64", ""), ["arm64/v8.1"]),
        # No fallback to the 32-bit architecture: the host's own Python runs the venv.
        (("arm64", ""), ["arm/v7"]),
        (("amd64", "v3"), ["386"]),
    ],
)
def test_a_newer_variant_or_another_architecture_is_refused(
    artifacts: Artifacts, wheels: Wheels, tmp_path: Path, host: tuple[str, str], entries: list[str]
) -> None:
    ref = _write(artifacts, wheels, [(platform, {ANN_GLIBC: "2.17"}) for platform in entries])
    line = _refusal(ref, glibc_host("2.36", arch=host[0], variant=host[1]), tmp_path / "cache")
    name = f"{host[0]}/{host[1]}" if host[1] else host[0]
    assert f"no platform fits this host (other-1-{name}, glibc 2.36, " in line
