"""The build stage end to end: real pip, real builder venvs, real C compiler, real git."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from tests.factories import make_project, make_sdist
from tests.hostfacts import NATIVE_WHEEL_TAGS, PLATFORM_KEY, platform_key_for
from tests.integration.conftest import LocalIndex, RecipeWriter
from tests.needs import needs_root, require_python
from tests.pythons import OTHER_PYTHONS, find_python
from tests.servers import FileServer
from tests.signing import make_key, write_policy
from venvship.artifact.documents import ANN_PYTHON, WHEEL_TYPE, Index, Manifest, VenvConfig
from venvship.builder.pins import INSTALL_TOOLS, versions_for
from venvship.builder.recipebuild import BuildOptions, build_recipe
from venvship.builder.signer import load_signing_key, sign_artifact
from venvship.catalog.contents import diff_views, inspect_ref, read_sbom
from venvship.cli.venvship_main import main
from venvship.oci.attach import open_store
from venvship.oci.layout import Layout
from venvship.oci.reference import parse_ref
from venvship.recipe.recipefile import load_recipe

PIP = versions_for("{}.{}".format(*sys.version_info[:2]), INSTALL_TOOLS)["pip"]
PLATFORM_SUFFIX = f"-{PLATFORM_KEY}"


def _config(layout: Layout, ref: str) -> tuple[Manifest, VenvConfig]:
    desc = layout.resolve(ref)
    manifest = Manifest.from_bytes(layout.read_blob(desc.digest))
    return manifest, VenvConfig.from_json(json.loads(layout.read_blob(manifest.config.digest)))


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_build_locks_closure_with_c_extension_and_git(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    local_index: LocalIndex,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    git_line = f"{local_index.git_url}@{local_index.git_sha}#egg=gamma"
    recipe = write_recipe(packages=["alpha", git_line])
    layout = Layout.create(tmp_path / "oci")
    result = build_recipe(load_recipe(recipe), output=layout, options=BuildOptions(cache=cache))

    assert result.status == "built"
    assert sorted(result.built) == [
        "alpha-1.1-py3-none-any.whl",
        f"beta-2.0-{NATIVE_WHEEL_TAGS}.whl",
        "gamma-3.0.dev4-py3-none-any.whl",
    ]
    manifest, config = _config(layout, f"demo:1.0{PLATFORM_SUFFIX}")
    assert {(w.name, w.version) for w in config.lock} == {
        ("alpha", "1.1"),
        ("beta", "2.0"),
        ("gamma", "3.0.dev4"),
    }
    # The lock holds the built version, never the git URL; provenance remembers where it came from.
    assert "git+" not in json.dumps([w.to_json() for w in config.lock])
    assert config.provenance["gamma-3.0.dev4-py3-none-any.whl"].endswith(local_index.git_sha)
    assert [t.name for t in config.tools] == ["pip"] and config.tools[0].version == PIP
    assert config.platform.distro_bound  # beta's wheel is linux_x86_64
    # One hash chain: the lock's sha256 is the blob digest and the bytes hash to it.
    titles = {layer.title: layer.digest for layer in manifest.layers}
    for wheel in config.lock:
        assert titles[wheel.filename] == wheel.digest
        assert hashlib.sha256(layout.blob_path(wheel.digest).read_bytes()).hexdigest() == wheel.sha256
    assert "demo:1.0" in layout.refs()
    # inspect shows the commit a VCS-sourced wheel was built from.
    capsys.readouterr()
    assert main(["inspect", f"oci:{layout.root}:demo:1.0"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "gamma==" in ln)
    assert line.endswith(
        f"gamma-3.0.dev4-py3-none-any.whl  built from {local_index.git_url}@{local_index.git_sha}"
    )
    assert main(["inspect", f"oci:{layout.root}:demo:1.0", "--json"]) == 0
    packages = json.loads(capsys.readouterr().out)["platforms"][0]["packages"]
    assert {p["name"]: p.get("vcs") for p in packages} == {
        "alpha": None,
        "beta": None,
        "gamma": f"{local_index.git_url}@{local_index.git_sha}",
    }


def test_skopeo_reads_the_layout_and_copies_it_keeping_digests(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path
) -> None:
    layout = Layout.create(tmp_path / "oci")
    build_recipe(load_recipe(write_recipe()), output=layout, options=BuildOptions(cache=cache))
    ref = f"demo:1.0{PLATFORM_SUFFIX}"
    desc = layout.resolve(ref)
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout.root}:{ref}"], check=True, capture_output=True
    ).stdout
    assert raw == layout.read_blob(desc.digest)
    subprocess.run(
        [
            "skopeo",
            "copy",
            "-q",
            "--preserve-digests",
            f"oci:{layout.root}:{ref}",
            f"oci:{tmp_path / 'copy'}:{ref}",
        ],
        check=True,
    )
    copy = Layout.open(tmp_path / "copy")
    assert copy.resolve(ref).digest == desc.digest
    assert set(copy.blob_digests()) <= set(layout.blob_digests())
    manifest = Manifest.from_bytes(layout.read_blob(desc.digest))
    for d in (manifest.config, *manifest.layers):
        assert copy.verify_blob(d.digest, d.size)
    # skopeo 1.9 re-serialises image indexes it copies (it drops OCI 1.1 artifactType), so for
    # the index we check that every platform manifest and blob arrives under its own digest.
    subprocess.run(
        ["skopeo", "copy", "-q", "--all", f"oci:{layout.root}:demo:1.0", f"oci:{tmp_path / 'all'}:demo:1.0"],
        check=True,
    )
    copied = Layout.open(tmp_path / "all")
    index_raw = copied.read_blob(copied.resolve("demo:1.0").digest)
    assert [m["digest"] for m in json.loads(index_raw)["manifests"]] == [desc.digest]


def test_second_build_is_a_noop_and_one_pin_rebuilds_one_wheel(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write_recipe(constraints=["alpha==1.0"])
    out = tmp_path / "oci"
    argv = ["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]
    assert main(argv) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main(argv) == 0
    assert "demo: unchanged" in capsys.readouterr().out
    assert _snapshot(out) == before  # no blob, no index.json written

    write_recipe(constraints=["alpha==1.1"])
    layout = Layout.open(out)
    result = build_recipe(load_recipe(recipe), output=layout, options=BuildOptions(cache=cache))
    assert result.built == ("alpha-1.1-py3-none-any.whl",)
    assert result.cached == (
        f"beta-2.0-{NATIVE_WHEEL_TAGS}.whl",
        f"pip-{PIP}-py3-none-any.whl",
    )


def test_same_inputs_give_the_same_manifest_digest(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    recipe = load_recipe(write_recipe())
    first = build_recipe(recipe, output=Layout.create(tmp_path / "a"), options=BuildOptions(cache=cache))
    again = build_recipe(recipe, output=Layout.create(tmp_path / "b"), options=BuildOptions(cache=cache))
    assert again.status == "built" and again.built == ()  # packaged anew from the same wheels
    assert first.digest == again.digest
    # The created time really comes from SOURCE_DATE_EPOCH: another epoch, another digest.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    other = build_recipe(recipe, output=Layout.create(tmp_path / "c"), options=BuildOptions(cache=cache))
    assert other.digest != first.digest


def test_reuse_from_a_previous_artifact_builds_nothing(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    recipe = load_recipe(write_recipe())
    first = Layout.create(tmp_path / "first")
    build_recipe(recipe, output=first, options=BuildOptions(cache=cache))
    # Its wheels built from sdists are reused only because a key the policy trusts signed it.
    key = make_key(tmp_path / "keys", "release")
    sign_artifact(open_store(parse_ref(f"oci:{first.root}:demo")), "1.0", load_signing_key(str(key.private)))
    policy = write_policy(tmp_path / "reuse-policy.toml", {f"oci:{first.root}": [key.public]})
    fresh_cache = tmp_path_factory.mktemp("fresh-cache")
    result = build_recipe(
        recipe,
        output=Layout.create(tmp_path / "second"),
        options=BuildOptions(
            cache=fresh_cache, reuse_from=parse_ref(f"oci:{first.root}:demo:1.0"), reuse_policy=policy
        ),
    )
    assert result.built == ()
    assert sorted(result.reused) == [
        "alpha-1.1-py3-none-any.whl",
        f"beta-2.0-{NATIVE_WHEEL_TAGS}.whl",
        f"pip-{PIP}-py3-none-any.whl",
    ]


def test_uv_install_tool_ships_the_uv_wheel(tmp_path: Path, write_recipe: RecipeWriter, cache: Path) -> None:
    layout = Layout.create(tmp_path / "oci")
    build_recipe(
        load_recipe(write_recipe(install_tool="uv")), output=layout, options=BuildOptions(cache=cache)
    )
    _, config = _config(layout, f"demo:1.0{PLATFORM_SUFFIX}")
    assert config.install_tool == "uv"
    assert [t.name for t in config.tools] == ["uv"]
    assert "manylinux" in config.tools[0].filename


@pytest.mark.parametrize(
    ("keys", "key_path"),
    [
        ({"constraints": ["alpha==9.9"]}, "venv.packages"),
        ({"packages": ["alpha", "beta<2"]}, "venv.packages"),
    ],
    ids=["unresolvable-pin", "conflicting-pins"],
)
def test_unresolvable_recipes_fail_with_one_line_and_write_nothing(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
    keys: dict[str, object],
    key_path: str,
) -> None:
    recipe = write_recipe(**keys)
    out = tmp_path / "oci"
    assert main(["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if line.startswith("venvship: error: "))
    assert first.startswith(f"venvship: error: {recipe}: {key_path}: cannot resolve")
    assert "Traceback" not in err
    assert Layout.open(out).refs() == {}


def test_a_failed_wheel_build_writes_nothing_and_the_next_run_retries(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, local_index: LocalIndex
) -> None:
    broken = local_index.projects / "broken-1.0-src"
    setup = broken / "setup.py"
    good = setup.read_text()
    setup.write_text("raise SystemExit('this package does not build')\n")
    subprocess.run(["git", "init", "-q"], cwd=broken, check=True)
    recipe = load_recipe(write_recipe(packages=[f"broken @ file://{broken}"]))
    layout = Layout.create(tmp_path / "oci")
    from venvship.errors import VenvshipError

    with pytest.raises(VenvshipError, match="broken"):
        build_recipe(recipe, output=layout, options=BuildOptions(cache=cache))
    assert layout.refs() == {}
    setup.write_text(good)
    assert build_recipe(recipe, output=layout, options=BuildOptions(cache=cache)).status == "built"


def test_inspect_and_diff_report_packages_and_settings(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "oci"
    layout = Layout.create(out)
    build_recipe(
        load_recipe(write_recipe(constraints=["alpha==1.0"])),
        output=layout,
        options=BuildOptions(cache=cache),
    )
    changed = write_recipe(
        version="2.0",
        install_path="/opt/venvs/demo2",
        install_tool="uv",
        symlink_system_packages=["python3-venvship-none"],
        extra='\n[venv.install]\ndistro-packages = ["libxml2"]\npip-args = ["--no-progress"]\n'
        'env = {TZ = "UTC"}\n\n[[venv.facts]]\nsection = "demo"\noption = "tag"\nvalue = "2.0"\n',
    )
    build_recipe(load_recipe(changed), output=layout, options=BuildOptions(cache=cache))
    assert main(["inspect", f"oci:{out}:demo:1.0", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    [platform] = view["platforms"]
    assert platform["key"] == PLATFORM_SUFFIX[1:]
    assert {p["name"]: p["version"] for p in platform["packages"]} == {"alpha": "1.0", "beta": "2.0"}
    assert all(p["size"] > 0 and len(p["sha256"]) == 64 for p in platform["packages"])
    diff = diff_views(
        inspect_ref(parse_ref(f"oci:{out}:demo:1.0")), inspect_ref(parse_ref(f"oci:{out}:demo:2.0"))
    )
    [changes] = diff.changes.values()
    assert [(c.name, c.kind, c.old and c.old.version, c.new and c.new.version) for c in changes] == [
        ("alpha", "changed", "1.0", "1.1")
    ]
    [settings] = diff.settings.values()
    uv = versions_for("{}.{}".format(*sys.version_info[:2]), INSTALL_TOOLS)["uv"]
    assert [(x.name, x.old, x.new) for x in settings] == [
        ("version", "1.0", "2.0"),
        ("install_path", "/opt/venvs/demo", "/opt/venvs/demo2"),
        ("install_tool", f"pip {PIP}", f"uv {uv}"),
        ("distro_packages", [], ["libxml2"]),
        ("env", {}, {"TZ": "UTC"}),
        ("pip_args", [], ["--no-progress"]),
        ("symlinks", [], ["python3-venvship-none"]),
        ("facts", [], ["openstack_ansible: [demo] tag = 2.0"]),
    ]
    assert main(["diff", f"oci:{out}:demo:1.0", f"oci:{out}:demo:2.0"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  version: 1.0 -> 2.0",
        "  install path: /opt/venvs/demo -> /opt/venvs/demo2",
        f"  install tool: pip {PIP} -> uv {uv}",
        "  distro packages: (none) -> libxml2",
        "  env: (none) -> TZ=UTC",
        "  pip args: (none) -> --no-progress",
        "  symlinks: (none) -> python3-venvship-none",
        "  facts: (none) -> openstack_ansible: [demo] tag = 2.0",
        "  ~ alpha 1.0 -> 1.1",
    ]
    assert main(["diff", f"oci:{out}:demo:1.0", f"oci:{out}:demo:2.0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1
    assert data["settings"][PLATFORM_SUFFIX[1:]][0] == {"setting": "version", "old": "1.0", "new": "2.0"}


def test_the_recipe_build_env_reaches_the_wheel_build(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path
) -> None:
    proj = tmp_path / "flavour-src"
    (proj / "flavour").mkdir(parents=True)
    (proj / "flavour" / "__init__.py").write_text("")
    # The build itself records the variable, as a real build reading e.g. CFLAGS would use it.
    (proj / "setup.py").write_text(
        "import os\nfrom setuptools import setup\n"
        "with open('flavour/built.py', 'w') as f:\n"
        "    f.write('FLAVOUR = %r\\n' % os.environ.get('VENVSHIP_TEST_FLAVOUR', 'unset'))\n"
        "setup(name='flavour', version='1.0', packages=['flavour'])\n"
    )
    recipe = write_recipe(
        packages=[f"flavour @ {proj.as_uri()}"], extra='env = { VENVSHIP_TEST_FLAVOUR = "salty" }\n'
    )
    layout = Layout.create(tmp_path / "oci")
    build_recipe(load_recipe(recipe), output=layout, options=BuildOptions(cache=cache))
    manifest, _ = _config(layout, f"demo:1.0{PLATFORM_SUFFIX}")
    [layer] = [
        m for m in manifest.layers if (m.title or "").startswith("flavour-") and m.media_type == WHEEL_TYPE
    ]
    with zipfile.ZipFile(layout.blob_path(layer.digest)) as whl:
        assert whl.read("flavour/built.py").decode() == "FLAVOUR = 'salty'\n"


def test_inputs_resolved_before_are_not_resolved_again(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="venvship")
    layout = Layout.create(tmp_path / "oci")
    first = build_recipe(load_recipe(write_recipe()), output=layout, options=BuildOptions(cache=cache))
    assert "resolved before" not in caplog.text
    # Only an install-side field changes: a new artifact from the same closure, pip not asked.
    second = build_recipe(
        load_recipe(write_recipe(version="1.1")), output=layout, options=BuildOptions(cache=cache)
    )
    assert second.status == "built" and second.built == () and second.digest != first.digest
    assert "demo: inputs resolved before" in caplog.text
    caplog.clear()
    third = build_recipe(
        load_recipe(write_recipe(version="1.2")),
        output=layout,
        options=BuildOptions(cache=cache, refresh=True),
    )
    assert "resolved before" not in caplog.text
    _, before = _config(layout, f"demo:1.1{PLATFORM_SUFFIX}")
    _, after = _config(layout, f"demo:1.2{PLATFORM_SUFFIX}")
    assert third.status == "built" and before.lock == after.lock


def test_a_build_is_never_silent_for_long(tmp_path: Path, write_recipe: RecipeWriter, cache: Path) -> None:
    """Off a terminal, every step that takes a while says so at least every two seconds."""
    recipe = write_recipe(packages=["alpha"])
    argv = ["build", str(recipe), "--output", f"oci:{tmp_path / 'oci'}", "--cache-dir", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")}
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "venvship.cli.venvship_main", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = [(time.monotonic() - start, line.rstrip("\n")) for line in proc.stderr]
    assert proc.wait(timeout=600) == 0, lines
    proc.stderr.close()
    times = [0.0] + [t for t, _ in lines] + [time.monotonic() - start]
    assert max(b - a for a, b in zip(times, times[1:])) < 3.5, lines


def test_a_full_build_cache_is_one_line_and_leaves_nothing_behind(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    shared_builders: Path,
    small_fs: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = small_fs("1m") / "cache"
    cache.mkdir()
    (cache / "builders").symlink_to(shared_builders)
    recipe = write_recipe(packages=["bulky"])  # a wheel of 2 MiB that does not compress
    argv = ["build", str(recipe), "--output", f"oci:{tmp_path / 'oci'}", "--cache-dir", str(cache)]
    assert main(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("venvship: error: ")]
    assert len(errors) == 1
    assert errors[0].startswith(f"venvship: error: {cache}")  # the file it was writing, in the cache
    assert (
        errors[0].endswith(" free); free some space and run again")
        and ": no space left on device (" in errors[0]
    )
    assert not (cache / "work").exists() or not any((cache / "work").iterdir())
    assert [p for p in cache.rglob("*") if p.name.endswith(".tmp") and "builders" not in p.parts] == []


def test_install_args_the_install_tool_refuses_stop_the_build(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # On the allow-list each, but uv takes only one of them: every target would fail.
    recipe = write_recipe(install_tool="uv", extra='\n[venv.install]\npip-args = ["-q", "-v"]\n')
    out = tmp_path / "oci"
    assert main(["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("venvship: error: ")]
    assert errors == [
        f"venvship: error: {recipe}: venv.install.pip-args: uv 0.13.9 refuses '-q -v': "
        "the argument '--quiet...' cannot be used with '--verbose...'"
    ]
    assert Layout.open(out).refs() == {}


def test_a_moved_tag_is_named_and_refused_with_immutable_tags(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "oci"
    recipe = write_recipe(constraints=["alpha==1.0"])
    argv = ["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]
    assert main(argv) == 0
    old = Layout.open(out).refs()
    capsys.readouterr()
    write_recipe(constraints=["alpha==1.1"])  # the same version, other content
    assert main([*argv, "--json"]) == 0
    stdout, err = capsys.readouterr()
    new = Layout.open(out).refs()
    platform, index = f"demo:1.0{PLATFORM_SUFFIX}", "demo:1.0"
    moves = [{"ref": f"oci:{out}:{r}", "old": old[r].digest, "new": new[r].digest} for r in (platform, index)]
    assert json.loads(stdout)["retagged"] == moves
    for move in moves:
        assert f"{move['ref']}: tag moved from {move['old']} to {move['new']}" in err.splitlines()
    write_recipe(constraints=["alpha==1.0"])
    assert main([*argv, "--immutable-tags"]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"venvship: error: oci:{out}:{platform}: the tag names {new[platform].digest}; ")
    assert last.endswith("refusing (--immutable-tags): publish the change under a new version")
    assert Layout.open(out).refs() == new


def test_one_index_for_several_pythons(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    local_index: LocalIndex,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Built once per interpreter into one output, a recipe's index tag offers each Python."""
    other = next((p for p in map(find_python, OTHER_PYTHONS) if p is not None), None)
    if other is None:
        other = require_python(OTHER_PYTHONS[0])
    recipe = write_recipe(packages=[f"{local_index.git_url}@{local_index.git_sha}#egg=gamma"])
    out = tmp_path / "oci"
    argv = ["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache), "--immutable-tags"]
    assert main(argv) == 0
    assert main([*argv, "--python", str(other)]) == 0  # a new platform: the index grows, no tag moves
    layout = Layout.open(out)
    index = Index.from_bytes(layout.read_blob(layout.resolve("demo:1.0").digest))
    abi = "cp{}{}".format(*sys.version_info[:2])
    other_abi = (
        "cp"
        + subprocess.run(
            [other, "-c", "import sys; print('%d%d' % sys.version_info[:2])"], capture_output=True, text=True
        ).stdout.strip()
    )
    assert sorted(m.annotations[ANN_PYTHON] for m in index.manifests) == sorted([abi, other_abi])
    _, config = _config(layout, f"demo:1.0-{platform_key_for(other_abi)}")
    assert config.python.executable == str(other)
    assert "tag moved" not in capsys.readouterr().err


@needs_root
def test_a_venv_python_in_a_folder_only_root_enters_builds(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path
) -> None:
    """A recipe's python may be a venv's in a folder of root's that the build user cannot enter
    (a CI job's 0700 scratch folder): the build code runs the interpreter it leads to."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", closed / "py"], check=True)
    recipe = write_recipe(python=str(closed / "py" / "bin" / "python3"))
    result = build_recipe(
        load_recipe(recipe), output=Layout.create(tmp_path / "oci"), options=BuildOptions(cache=cache)
    )
    assert result.status == "built" and result.packages == 2


def test_pips_environment_is_an_input(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip reads PIP_* settings (and its config files) as well as the recipe: changing one is a
    changed input, so the build runs again instead of reporting the old artifact unchanged."""
    layout = Layout.create(tmp_path / "oci")
    recipe = load_recipe(write_recipe(packages=["alpha"]))
    assert build_recipe(recipe, output=layout, options=BuildOptions(cache=cache)).status == "built"
    pins = tmp_path / "pins"
    pins.mkdir(mode=0o755)
    (pins / "constraints.txt").write_text("alpha==1.0\n")
    pins.chmod(0o755)
    tmp_path.chmod(0o711)  # pip runs as the build user, who reads the file
    monkeypatch.setenv("PIP_CONSTRAINT", str(pins / "constraints.txt"))
    again = build_recipe(recipe, output=layout, options=BuildOptions(cache=cache))
    assert again.status == "built"
    _, config = _config(layout, f"demo:1.0{PLATFORM_SUFFIX}")
    assert {w.name: w.version for w in config.lock}["alpha"] == "1.0"


def test_a_direct_url_names_its_download_in_the_purl_without_its_token(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path
) -> None:
    sdist = make_sdist(make_project(tmp_path / "src", "urlpkg", "1.5"), tmp_path / "dist")
    server = FileServer({f"/files/{sdist.name}?sig=SECRET": sdist.read_bytes()})
    try:
        host = server.url.split("://", 1)[1]
        recipe = write_recipe(packages=[f"urlpkg @ http://ci:TOKEN@{host}/files/{sdist.name}?sig=SECRET"])
        layout = Layout.create(tmp_path / "oci")
        build_recipe(load_recipe(recipe), output=layout, options=BuildOptions(cache=cache))
    finally:
        server.close()
    ref = f"demo:1.0{PLATFORM_SUFFIX}"
    _, config = _config(layout, ref)
    [wheel] = [w for w in config.lock if w.name == "urlpkg"]
    url = f"{server.url}/files/{sdist.name}"
    assert config.download_urls == {wheel.filename: url}
    # Index packages are not direct URLs: they name none.
    assert all(w.filename not in config.download_urls for w in config.lock if w.name != "urlpkg")
    sbom = read_sbom(parse_ref(f"oci:{tmp_path / 'oci'}:{ref}"))
    [component] = [c for c in json.loads(sbom)["components"] if c["name"] == "urlpkg"]
    assert component["purl"].startswith("pkg:pypi/urlpkg@1.5?download_url=http")
    assert {"type": "distribution", "url": url} in component["externalReferences"]
    assert b"TOKEN" not in sbom and b"SECRET" not in sbom
