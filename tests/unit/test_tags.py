"""Wheel tags → where a venv runs: the glibc floor of manylinux wheels, the musl floor of musllinux ones."""

from __future__ import annotations

from venvship.builder.tags import glibc_floor, is_distro_bound, musl_floor

PURE = "six-1.16.0-py2.py3-none-any.whl"
MANYLINUX_2014 = "cffi-1.17.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
MANYLINUX_2_28 = "cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
MUSL_1_1 = "cffi-1.17.1-cp311-cp311-musllinux_1_1_x86_64.whl"
MUSL_1_2 = "cryptography-44.0.0-cp39-abi3-musllinux_1_2_x86_64.whl"
BUILT_HERE = "netifaces-0.11.0-cp311-cp311-linux_x86_64.whl"


def test_musl_floor_is_the_highest_need() -> None:
    assert musl_floor([PURE, MUSL_1_1]) == "1.1"
    assert musl_floor([MUSL_1_1, MUSL_1_2, PURE]) == "1.2"


def test_musl_floor_ignores_glibc_wheels_and_glibc_floor_musl_wheels() -> None:
    assert musl_floor([PURE, MANYLINUX_2_28, BUILT_HERE]) == ""
    assert glibc_floor([PURE, MUSL_1_2]) == ""


def test_glibc_floor_is_the_highest_need_with_legacy_aliases() -> None:
    assert glibc_floor([MANYLINUX_2014, PURE]) == "2.17"
    assert glibc_floor([MANYLINUX_2014, MANYLINUX_2_28]) == "2.28"
    assert glibc_floor(["x-1.0-cp311-cp311-manylinux1_x86_64.whl"]) == "2.5"


def test_a_wheel_with_several_tags_needs_its_lowest() -> None:
    both = "x-1.0-cp311-cp311-musllinux_1_2_x86_64.musllinux_1_1_x86_64.whl"
    assert musl_floor([both]) == "1.1"


def test_distro_bound() -> None:
    assert is_distro_bound([PURE, BUILT_HERE])
    assert not is_distro_bound([PURE, MANYLINUX_2014, MUSL_1_1])
