"""Host platform facts: OCI architecture variants (containerd's rules) and the C library."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from venvship.host.info import (
    detect_musl,
    glibc_version,
    host_variant,
    musl_version,
    normalize_platform,
    runnable_variants,
)

# -- architecture variants: containerd's platforms.Normalize and platforms.Only ------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        (("aarch64", ""), ("arm64", "")),
        (("arm64", "v8"), ("arm64", "")),
        (("arm64", "8"), ("arm64", "")),
        (("arm64", "v8.0"), ("arm64", "")),
        (("arm64", "9.0"), ("arm64", "v9")),
        (("arm64", "v8.2"), ("arm64", "v8.2")),
        (("x86_64", ""), ("amd64", "")),
        (("amd64", "v1"), ("amd64", "")),
        (("amd64", "v3"), ("amd64", "v3")),
        (("arm", ""), ("arm", "v7")),
        (("arm", "6"), ("arm", "v6")),
        (("armhf", ""), ("arm", "v7")),
        (("armel", ""), ("arm", "v6")),
        (("i386", ""), ("386", "")),
        (("s390x", ""), ("s390x", "")),
    ],
)
def test_normalize_platform(given: tuple[str, str], normal: tuple[str, str]) -> None:
    assert normalize_platform(*given) == normal


@pytest.mark.parametrize(
    ("host", "runs"),
    [
        (("amd64", ""), ("",)),
        (("amd64", "v2"), ("v2", "")),
        (("amd64", "v3"), ("v3", "v2", "")),
        (("amd64", "v4"), ("v4", "v3", "v2", "")),
        (("arm64", ""), ("",)),
        (("arm64", "v8"), ("",)),
        (("arm64", "v8.2"), ("v8.2", "v8.1", "")),
        (("arm64", "v9"), ("v9", "v8.5", "v8.4", "v8.3", "v8.2", "v8.1", "")),
        (
            ("arm64", "v9.2"),
            ("v9.2", "v9.1", "v9", "v8.7", "v8.6", "v8.5", "v8.4", "v8.3", "v8.2", "v8.1", ""),
        ),
        # v9.0 forked from v8.5: v9.x runs v8.{x+5}, capped at v8.9.
        (
            ("arm64", "v9.5"),
            ("v9.5", "v9.4", "v9.3", "v9.2", "v9.1", "v9", *(f"v8.{m}" for m in range(9, 0, -1)), ""),
        ),
        (("arm", "v8"), ("v8", "v7", "v6", "v5")),
        (("arm", "v7"), ("v7", "v6", "v5")),
        (("arm", ""), ("v7", "v6", "v5")),
        (("arm", "v6"), ("v6", "v5")),
        (("arm", "v5"), ("v5",)),
        (("ppc64le", ""), ("",)),
    ],
)
def test_runnable_variants(host: tuple[str, str], runs: tuple[str, ...]) -> None:
    assert runnable_variants(*host) == runs


# The first processor block of real /proc/cpuinfo files, cut to the fields read.
CPUINFO = {
    # Intel Core 2 (2006): SSE3 and SSSE3, but neither SSE4.2 nor POPCNT: x86-64 baseline.
    "core2": "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov"
    " pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx lm constant_tsc pni"
    " monitor ds_cpl vmx est tm2 ssse3 cx16 xtpr lahf_lm\n\nprocessor\t: 1\nflags\t\t: avx512f\n",
    # Intel Nehalem (2008): x86-64-v2.
    "nehalem": "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca"
    " cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx rdtscp lm constant_tsc pni dtes64"
    " monitor ssse3 cx16 sse4_1 sse4_2 popcnt lahf_lm\n",
    # Intel Haswell (2013): x86-64-v3.
    "haswell": "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca"
    " cmov pat pse36 clflush mmx fxsr sse sse2 ss syscall nx pdpe1gb rdtscp lm constant_tsc pni"
    " pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand"
    " hypervisor lahf_lm abm fsgsbase bmi1 avx2 smep bmi2 erms invpcid\n",
    # Intel Skylake-SP (2017): x86-64-v4.
    "skylake-sp": "processor\t: 0\nflags\t\t: fpu cx8 cmov sse sse2 lm pni ssse3 fma cx16 sse4_1"
    " sse4_2 movbe popcnt xsave avx f16c lahf_lm abm bmi1 avx2 bmi2 avx512f avx512dq avx512cd"
    " avx512bw avx512vl\n",
    # Raspberry Pi 2 (Cortex-A7), 32-bit kernel: the kernel names the architecture.
    "rpi2": "processor\t: 0\nmodel name\t: ARMv7 Processor rev 5 (v7l)\nCPU architecture: 7\n",
    # A 64-bit CPU: the kernel says 8 even to a 32-bit userland (armv8l).
    "cortex-a72": "processor\t: 0\nBogoMIPS\t: 108.00\nCPU architecture: 8\n",
}


@pytest.mark.parametrize(
    ("machine", "cpu", "variant"),
    [
        ("x86_64", "core2", ""),
        ("x86_64", "nehalem", "v2"),
        ("x86_64", "haswell", "v3"),
        ("x86_64", "skylake-sp", "v4"),
        ("armv7l", "rpi2", "v7"),
        ("armv8l", "cortex-a72", "v8"),
        ("armv7l", None, "v7"),  # no /proc/cpuinfo: the machine name
        ("armv6l", None, "v6"),
        ("aarch64", "cortex-a72", ""),  # arm64/v8 is plain arm64
        ("x86_64", None, ""),  # no /proc/cpuinfo: the baseline, never a guess upwards
        ("s390x", None, ""),
    ],
)
def test_host_variant_from_cpuinfo(tmp_path: Path, machine: str, cpu: str | None, variant: str) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    if cpu is not None:
        cpuinfo.write_text(CPUINFO[cpu])
    assert host_variant(machine, cpuinfo=cpuinfo) == variant


# -- libc ---------------------------------------------------------------------------------------

# What Alpine 3.19's loader prints when run without arguments (and ldd --version, to stderr).
MUSL_LOADER = """musl libc (x86_64)
Version 1.2.4_git20230717
Dynamic Program Loader
Usage: /lib/ld-musl-x86_64.so.1 [options] [--] pathname
"""


def test_musl_version_from_the_loader() -> None:
    assert musl_version(MUSL_LOADER) == "1.2.4_git20230717"
    assert musl_version("ldd (Debian GLIBC 2.36-9+deb12u10) 2.36\n") == ""


def test_this_glibc_host_has_a_glibc_version_and_no_musl(tmp_path: Path) -> None:
    libc = subprocess.run(
        ["getconf", "GNU_LIBC_VERSION"], capture_output=True, text=True, check=True, timeout=30
    )
    assert glibc_version() == libc.stdout.split()[-1]
    assert detect_musl(str(tmp_path / "ld-musl-*.so.1")) == ""


def test_a_musl_loader_is_run_for_its_version(tmp_path: Path) -> None:
    # A stand-in loader: the real one prints its banner and exits 1 when given no program.
    loader = tmp_path / "ld-musl-x86_64.so.1"
    loader.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{MUSL_LOADER}EOF\nexit 1\n")
    loader.chmod(0o755)
    assert detect_musl(str(tmp_path / "ld-musl-*.so.1")) == "1.2.4_git20230717"
