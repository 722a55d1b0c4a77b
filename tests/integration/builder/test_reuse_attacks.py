"""``--reuse-from`` attacked (#20): a previous artifact whose wheels were swapped by whoever could
write it (a registry account without the key, an old layout).

Before #20 a reused wheel was matched by its source key alone: the fake ``pip`` and the fake
``alpha`` were locked into the new artifact and stored in the local wheel cache under the
genuine sources' keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import pytest

from tests.hostfacts import PLATFORM_KEY
from tests.integration.conftest import RecipeWriter
from tests.integration.install.conftest import make_wheel, wheel_of
from tests.signing import make_key, write_policy
from venvship.artifact.documents import Manifest, VenvConfig, Wheel
from venvship.builder.package import write_to_layout
from venvship.builder.pins import INSTALL_TOOLS, versions_for
from venvship.builder.recipebuild import BuildOptions, build_recipe
from venvship.builder.signer import load_signing_key, sign_artifact
from venvship.oci.attach import open_store
from venvship.oci.layout import Layout
from venvship.oci.reference import parse_ref
from venvship.recipe.recipefile import load_recipe

PIP = versions_for("{}.{}".format(*sys.version_info[:2]), INSTALL_TOOLS)["pip"]
PLATFORM_TAG = f"demo:1.0-{PLATFORM_KEY}"


def _config(layout: Layout, ref: str) -> VenvConfig:
    manifest = Manifest.from_bytes(layout.read_blob(layout.resolve(ref).digest))
    return VenvConfig.from_json(json.loads(layout.read_blob(manifest.config.digest)))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_swapped_wheels_of_a_previous_artifact_are_not_used(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    recipe = load_recipe(write_recipe())
    previous = Layout.create(tmp_path / "previous")
    build_recipe(recipe, output=previous, options=BuildOptions(cache=cache))
    genuine = _config(previous, PLATFORM_TAG)

    # The attacker's wheels, under the genuine file names: a pip that leaves a marker if run,
    # and an alpha (built from an sdist, so no index hash names it).
    marker = tmp_path / "fake-pip-ran"
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    fakes = {
        "pip": make_wheel(tmp_path / "fake", "pip", PIP, extra={"pip/__main__.py": code}),
        "alpha": make_wheel(tmp_path / "fake", "alpha", "1.1"),
    }
    fake_wheels = {name: wheel_of(path) for name, path in fakes.items()}
    assert {w.filename for w in fake_wheels.values()} <= {w.filename for w in (*genuine.lock, *genuine.tools)}

    def swap(wheels: tuple[Wheel, ...]) -> tuple[Wheel, ...]:
        return tuple(fake_wheels.get(w.name, w) for w in wheels)

    forged = dataclasses.replace(genuine, lock=swap(genuine.lock), tools=swap(genuine.tools))
    blobs = {w.digest: previous.blob_path(w.digest) for w in (*genuine.lock, *genuine.tools)}
    blobs.update({fake_wheels[n].digest: p for n, p in fakes.items()})
    write_to_layout(previous, forged, blobs)

    # Signed, but by a key the build's policy does not trust: no better than unsigned.
    trusted, other = make_key(tmp_path / "keys", "release"), make_key(tmp_path / "keys", "other")
    sign_artifact(
        open_store(parse_ref(f"oci:{previous.root}:demo")), "1.0", load_signing_key(str(other.private))
    )
    policy = write_policy(tmp_path / "reuse-policy.toml", {f"oci:{previous.root}": [trusted.public]})

    fresh_cache = tmp_path_factory.mktemp("fresh-cache")
    (fresh_cache / "builders").symlink_to(cache / "builders")
    out = Layout.create(tmp_path / "out")
    result = build_recipe(
        recipe,
        output=out,
        options=BuildOptions(
            cache=fresh_cache, reuse_from=parse_ref(f"oci:{previous.root}:demo:1.0"), reuse_policy=policy
        ),
    )

    fake_shas = {w.sha256 for w in fake_wheels.values()}
    built = _config(out, PLATFORM_TAG)
    assert fake_shas.isdisjoint(w.sha256 for w in (*built.lock, *built.tools))  # not locked
    assert {w.sha256 for w in built.tools} == {w.sha256 for w in genuine.tools}
    assert not marker.exists()  # not run
    cached = {_sha256(p) for p in (fresh_cache / "wheels").rglob("*.whl")}
    assert fake_shas.isdisjoint(cached)  # not in the wheel cache
    # Not signed by a trusted key, so nothing built from a source is taken from it; the genuine index wheel still is.
    assert result.reused == ()
    assert "alpha-1.1-py3-none-any.whl" in result.built

    # The genuine previous artifact's index wheels are still reused (their sha256 is the index's).
    write_to_layout(previous, genuine, blobs)
    again_cache = tmp_path_factory.mktemp("again-cache")
    (again_cache / "builders").symlink_to(cache / "builders")
    again = build_recipe(
        recipe,
        output=Layout.create(tmp_path / "again"),
        options=BuildOptions(cache=again_cache, reuse_from=parse_ref(f"oci:{previous.root}:demo:1.0")),
    )
    assert again.reused == (f"pip-{PIP}-py3-none-any.whl",)


@pytest.mark.parametrize("how", ["changed in place", "source redirected"])
def test_a_tampered_wheel_cache_entry_is_not_used(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
    how: str,
) -> None:
    recipe = load_recipe(write_recipe())
    own = tmp_path_factory.mktemp("own-cache")
    (own / "builders").symlink_to(cache / "builders")
    first = Layout.create(tmp_path / "first")
    build_recipe(recipe, output=first, options=BuildOptions(cache=own))
    [genuine_pip] = _config(first, PLATFORM_TAG).tools
    wheels = own / "wheels"
    if how == "changed in place":
        # Same size, other bytes: only a content check tells.
        cached = wheels / "sha256" / genuine_pip.sha256 / genuine_pip.filename
        data = bytearray(cached.read_bytes())
        data[len(data) // 2] ^= 0xFF
        cached.write_bytes(bytes(data))
    else:
        # The source record of the genuine pip now names a fake stored under its own sha256.
        fake = make_wheel(tmp_path / "fake", "pip", PIP)
        wheel = wheel_of(fake)
        (wheels / "sha256" / wheel.sha256).mkdir(parents=True)
        (wheels / "sha256" / wheel.sha256 / wheel.filename).write_bytes(fake.read_bytes())
        for record in (wheels / "sources").glob("*.json"):
            if json.loads(record.read_text())["sha256"] == genuine_pip.sha256:
                record.write_text(json.dumps(wheel.to_json()))
    again = Layout.create(tmp_path / "again")
    result = build_recipe(recipe, output=again, options=BuildOptions(cache=own))
    assert _config(again, PLATFORM_TAG).tools == (genuine_pip,)
    assert genuine_pip.filename not in result.cached
    assert _sha256(again.blob_path(genuine_pip.digest)) == genuine_pip.sha256
