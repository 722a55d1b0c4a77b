"""``build --sign-key`` into a layout signs only what this build made or the key signed (#20).

The index tag ``NAME:VERSION`` of a layout is merged over every ``NAME:VERSION-*`` platform tag
the layout holds. Before #20 a build with ``--sign-key`` signed all of them: a platform manifest
that someone else put into the output folder (or an earlier unsigned build left there) was
signed with the key along with the one this build made.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import RecipeWriter
from tests.integration.install.conftest import make_config, make_wheel, wheel_of
from tests.signing import make_key
from venvship.builder.package import write_to_layout
from venvship.cli import venvship_main
from venvship.oci.attach import LayoutStore
from venvship.oci.layout import Layout


def test_a_platform_manifest_this_build_did_not_make_is_not_signed(
    write_recipe: RecipeWriter,
    cache: Path,
    tool_wheels: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "oci"
    # Someone who can write the output folder adds a platform of their own to demo 1.0.
    planted = make_wheel(tmp_path / "wheels", "alpha", "1.0", body="EVIL = True")
    uv = next(tool_wheels.glob("uv-*.whl"))
    config = make_config(lock=[wheel_of(planted)], tools=[wheel_of(uv)], architecture="arm64", abi="cp399")
    foreign = write_to_layout(
        Layout.create(out), config, {wheel_of(planted).digest: planted, wheel_of(uv).digest: uv}
    ).digest
    key = make_key(tmp_path / "keys", "release")
    argv = ["build", str(write_recipe()), "--output", f"oci:{out}", "--cache-dir", str(cache)]
    code = venvship_main.main([*argv, "--no-distro-packages", "--sign-key", str(key.private)])
    err = capsys.readouterr().err
    assert code == 1, err
    line = err.strip().splitlines()[-1]  # after the build's progress lines: the one error
    assert line.startswith("venvship: error: ") and foreign in line and "no signature" in line
    store = LayoutStore(Layout.open(out), "demo")
    assert not store.referrers(foreign)  # the key did not vouch for it

    # Signed by the key before (a build of that platform elsewhere, signed there): signed again.
    from venvship.builder.signer import load_signing_key, sign_digest

    sign_digest(store, store.get_manifest(foreign)[0], load_signing_key(str(key.private)))
    code = venvship_main.main([*argv, "--no-distro-packages", "--sign-key", str(key.private)])
    assert code == 0, capsys.readouterr().err
    assert store.referrers(foreign)
