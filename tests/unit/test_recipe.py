"""Recipes: every kind of bad recipe names the file and key path, and good ones load as the role did;
``venvship check`` names every fault at once, ``venvship refs`` each recipe's NAME:TAG."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from venvship.cli.venvship_main import main
from venvship.errors import RecipeError
from venvship.recipe.recipefile import (
    DEFAULT_FACTS_FILE,
    Recipe,
    check_recipes,
    find_recipes,
    load_recipe,
    load_recipes,
)

HEAD = """\
[venv]
name = "demo"
version = "1.0"
install-path = "/openstack/venvs/demo-1.0"
"""
VALID = HEAD + 'packages = ["foo"]\n'


def write(folder: Path, text: str, name: str = "demo.toml") -> Path:
    """Write ``text`` (dedented) to ``folder/name`` and return the path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(folder: Path, text: str) -> Recipe:
    return load_recipe(write(folder, text))


@dataclass(frozen=True)
class Bad:
    """A broken recipe and what its error must say."""

    id: str
    text: str
    key: str | None  # the key path after the file name; None for whole-file errors
    says: tuple[str, ...]


BAD = [
    Bad(
        "unknown-key",
        VALID.replace("install-path", "instal-path"),
        "venv.instal-path",
        ("unknown key", "did you mean 'install-path'?"),
    ),
    Bad(
        "unknown-key-in-build",
        VALID + "[venv.build]\npip-arg = []\n",
        "venv.build.pip-arg",
        ("unknown key", "did you mean 'pip-args'?"),
    ),
    Bad("wrong-type", HEAD + 'packages = "x"\n', "venv.packages", ("must be a list, not string",)),
    # import-role --keep-templates leaves Jinja for a person to fill in; nothing renders it later.
    Bad(
        "jinja-left",
        HEAD + 'packages = ["foo", "{{ extra_packages }}"]\n',
        "venv.packages[1]",
        ("still holds Jinja ('{{ extra_packages }}'): put the value Ansible would render here",),
    ),
    Bad(
        "jinja-whole-value",
        VALID + '[venv.install]\npip-args = "{% if x %}-q{% endif %}"\n',
        "venv.install.pip-args",
        ("still holds Jinja",),
    ),
    Bad(
        "bad-requirement",
        HEAD + 'packages = ["foo", "bar >>= 1"]\n',
        "venv.packages[1]",
        ("invalid requirement 'bar >>= 1'",),
    ),
    Bad(
        "missing-install-path",
        '[venv]\nname = "demo"\nversion = "1.0"\npackages = ["foo"]\n',
        "venv.install-path",
        ("is required",),
    ),
    Bad(
        "relative-install-path",
        VALID.replace('"/openstack/venvs/demo-1.0"', '"venvs/demo"'),
        "venv.install-path",
        ("must be an absolute path", "'venvs/demo'"),
    ),
    Bad(
        "missing-constraints-file",
        VALID + 'constraints = ["--constraint missing.txt"]\n',
        "venv.constraints[0]",
        ("constraints file not found: missing.txt",),
    ),
    Bad(
        "conflicting-pins",
        VALID + 'global-constraints = ["foo==1"]\nconstraints = ["foo==2"]\n',
        "venv.constraints",
        ("conflicting pins for foo: 2 here, 1 at", "venv.global-constraints"),
    ),
    Bad(
        "unknown-install-tool",
        VALID + 'install-tool = "pipp"\n',
        "venv.install-tool",
        ("must be one of pip, uv, not 'pipp'", "did you mean 'pip'?"),
    ),
    Bad("empty-name", VALID.replace('"demo"', '""'), "venv.name", ("must not be empty",)),
    Bad("invalid-toml", '[venv]\nname = "demo"\nversion = \n', None, ("invalid TOML", "line 3")),
    Bad(
        "fact-without-section",
        VALID + '[[venv.facts]]\noption = "venv_tag"\nvalue = "1.0"\n',
        "venv.facts[0].section",
        ("is required",),
    ),
]
FACT = '[[venv.facts]]\nfile = "f"\nsection = "s"\noption = "o"\nvalue = "v"\n'
INSTALL_PATH = '"/openstack/venvs/demo-1.0"'
# Where a venv may live (#10).
BAD += [
    Bad(
        "install-path-not-normal",
        VALID.replace(INSTALL_PATH, '"/etc/../etc"'),
        "venv.install-path",
        ("'/etc/../etc' is not in normal form: it means /etc",),
    ),
    Bad(
        "install-path-srv",
        VALID.replace(INSTALL_PATH, '"/srv"'),
        "venv.install-path",
        ("/srv is a system folder",),
    ),
    Bad(
        "install-path-etc-below",
        VALID.replace(INSTALL_PATH, '"/etc/venvs/demo"'),
        "venv.install-path",
        ("is in /etc, a system tree",),
    ),
    Bad(
        "install-path-home",
        VALID.replace(INSTALL_PATH, '"/home/svc"'),
        "venv.install-path",
        ("a home folder",),
    ),
]
# Install pip-args: an allow-list per install tool (#10).
BAD += [
    Bad(
        "install-pip-args-owned",
        VALID + '[venv.install]\npip-args = ["-q", "--no-compile"]\n',
        "venv.install.pip-args[1]",
        ("use `venv-pull install --no-compile`",),
    ),
    Bad(
        "install-pip-args-target",
        VALID + '[venv.install]\npip-args = ["--target", "/"]\n',
        "venv.install.pip-args[0]",
        ("use `venv-pull install --dest`",),
    ),
    Bad(
        "install-pip-args-per-tool",
        VALID + 'install-tool = "uv"\n[venv.install]\npip-args = ["--retries", "3"]\n',
        "venv.install.pip-args[0]",
        ("'--retries' is a pip option, and this venv installs with uv (uv's allowed options: -q, -v,",),
    ),
]
# Names that become files, INI lines or command-line arguments on targets (#10).
BAD += [
    Bad(
        "fact-file-path",
        VALID + FACT.replace('"f"', '"../cron.d/x"'),
        "venv.facts[0].file",
        ("not a plain name",),
    ),
    Bad(
        "fact-section-ini",
        VALID + FACT.replace('"s"', '"s]\\n[t"'),
        "venv.facts[0].section",
        ("not a plain",),
    ),
    Bad(
        "fact-option-ini",
        VALID + FACT.replace('"o"', '"o = x"'),
        "venv.facts[0].option",
        ("not a plain name",),
    ),
    Bad("fact-value-newline", VALID + FACT.replace('"v"', '"v\\n[t]"'), "venv.facts[0].value", ("one line",)),
    Bad(
        "distro-package-option",
        VALID + '[venv.install]\ndistro-packages = ["-oDir::Bin::dpkg=/tmp/x"]\n',
        "venv.install.distro-packages[0]",
        ("'-oDir::Bin::dpkg=/tmp/x' is not a Debian or RPM package name",),
    ),
    Bad(
        "build-distro-package-option",
        VALID + '[venv.build]\ndistro-packages = ["libxml2-dev", "--force-yes"]\n',
        "venv.build.distro-packages[1]",
        ("not a Debian or RPM package name",),
    ),
    Bad(
        "symlink-package-option",
        VALID + 'symlink-system-packages = ["--admindir=/tmp"]\n',
        "venv.symlink-system-packages[0]",
        ("not a Debian or RPM package name",),
    ),
    Bad(
        "cache-valid-time-years",
        VALID + "distro-cache-valid-time = 100000000000\n",
        "venv.distro-cache-valid-time",
        ("must be from 0 to",),
    ),
]
# Input limits: nesting, NUL, environment names (#10).
BAD += [
    Bad(
        "deep-array", VALID + "x = " + "[" * 5000 + "]" * 5000 + "\n", None, ("nested deeper than 64 levels",)
    ),
    Bad(
        "deep-table",
        VALID + "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n",
        None,
        ("nested deeper than 64",),
    ),
    Bad("deep-dotted-key", VALID + "a" + ".a" * 100 + " = 1\n", None, ("nested deeper than 64 levels",)),
    Bad("nul-name", VALID.replace('"demo"', '"de\\u0000mo"'), "venv.name", ("contains a NUL character",)),
    Bad(
        "nul-pip-arg",
        VALID + '[venv.build]\npip-args = ["-q", "--x\\u0000"]\n',
        "venv.build.pip-args[1]",
        ("contains a NUL character",),
    ),
    Bad(
        "nul-env-value",
        VALID + '[venv.install]\nenv = { A = "1\\u0000" }\n',
        "venv.install.env.A",
        ("contains a NUL character",),
    ),
    Bad("nul-fact", VALID + FACT.replace('"v"', '"v\\u0000"'), "venv.facts[0].value", ("contains a NUL",)),
    Bad(
        "env-key-equals",
        VALID + '[venv.build]\nenv = { "A=B" = "1" }\n',
        "venv.build.env",
        ("'A=B' is not an environment variable name",),
    ),
]


def where(path: Path, bad: Bad) -> str:
    return f"{path}: {bad.key}: " if bad.key else f"{path}: "


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_load_recipe_names_file_and_key_path(tmp_path: Path, bad: Bad) -> None:
    path = write(tmp_path, bad.text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(where(path, bad)), message
    for fragment in bad.says:
        assert fragment in message


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_build_cli_reports_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: Bad
) -> None:
    path = write(tmp_path / "recipes", bad.text)
    out, cache = tmp_path / "out", tmp_path / "cache"
    code = main(["build", str(path), "--output", f"oci:{out}", "--cache-dir", str(cache)])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"venvship: error: {where(path, bad)}")
    for fragment in bad.says:
        assert fragment in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()
    assert not cache.exists()


# -- what a good recipe turns into ---------------------------------------------------------------


def test_egg_url_becomes_pep508(tmp_path: Path) -> None:
    recipe = load(tmp_path, HEAD + 'packages = ["git+https://h/x@abc#egg=x"]\n')
    assert recipe.packages == ("x @ git+https://h/x@abc",)


def test_egg_url_keeps_subdirectory(tmp_path: Path) -> None:
    recipe = load(tmp_path, HEAD + 'packages = ["git+https://h/x@abc#egg=x&subdirectory=sub"]\n')
    assert recipe.packages == ("x @ git+https://h/x@abc#subdirectory=sub",)


def test_relative_constraint_file_resolves_against_recipe_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "recipes"
    write(folder, "foo==1\n", "upper.txt")
    path = write(folder, VALID + 'constraints = ["--constraint upper.txt", "-c=upper.txt", "bar<2"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working folder must not matter
    recipe = load_recipe(path)
    upper = (folder / "upper.txt").resolve()
    assert recipe.constraints == (f"--constraint {upper}", f"-c {upper}", "bar<2")
    assert recipe.constraint_files() == (upper, upper)


def test_constraint_urls_pass_through(tmp_path: Path) -> None:
    url = "--constraint http://172.29.236.100:8181/constraints/upper_constraints_cached.txt"
    recipe = load(tmp_path, VALID + f'constraints = ["{url}"]\n')
    assert recipe.constraints == (url,)
    assert recipe.constraint_files() == ()


def test_packages_merged_deduplicated_sorted_and_empty_dropped(tmp_path: Path) -> None:
    recipe = load(
        tmp_path,
        HEAD + 'default-packages = ["pymysql", "", "foo"]\npackages = ["foo", "  ", "bar", "pymysql"]\n',
    )
    assert recipe.packages == ("bar", "foo", "pymysql")


def test_defaults(tmp_path: Path) -> None:
    recipe = load(tmp_path, VALID)
    assert recipe.python == "python3"
    assert recipe.install_tool == "pip"
    assert recipe.package_state == "latest"
    assert recipe.distro_package_state == "present"
    assert recipe.build_requirements == ("pbr", "setuptools", "wheel")
    assert recipe.defaults_file is None


def test_build_requirements_extra_appended(tmp_path: Path) -> None:
    recipe = load(tmp_path, VALID + 'build-requirements-extra = ["maturin", "wheel"]\n')
    assert recipe.build_requirements == ("pbr", "setuptools", "wheel", "maturin")


def test_shared_defaults_beside_recipe_apply_first(tmp_path: Path) -> None:
    defaults = write(
        tmp_path,
        """\
        [defaults]
        global-constraints = ["pip==25.1", "setuptools==80.9.0"]
        install-tool = "uv"
        [defaults.install]
        env = { REQUESTS_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt" }
        """,
        "defaults.toml",
    )
    path = write(
        tmp_path, VALID + 'global-constraints = ["wheel==0.45.1"]\n[venv.install]\nenv = { A = "1" }\n'
    )
    recipe = load_recipe(path)
    assert recipe.global_constraints == ("pip==25.1", "setuptools==80.9.0", "wheel==0.45.1")
    assert recipe.install_tool == "uv"
    assert recipe.install.env == {"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt", "A": "1"}
    assert recipe.defaults_file == defaults
    assert find_recipes([tmp_path]) == [path]  # the defaults file is not a recipe


def test_recipe_value_wins_over_defaults(tmp_path: Path) -> None:
    write(tmp_path, '[defaults]\ninstall-tool = "uv"\npython = "python3.12"\n', "defaults.toml")
    recipe = load(tmp_path, VALID + 'install-tool = "pip"\n')
    assert recipe.install_tool == "pip"
    assert recipe.python == "python3.12"


def test_defaults_named_elsewhere(tmp_path: Path) -> None:
    common = write(
        tmp_path,
        '[defaults]\nglobal-constraints = ["pip==25.1"]\nconstraints = ["--constraint upper.txt"]\n',
        "common.toml",
    )
    write(tmp_path, "foo==1\n", "upper.txt")
    # A defaults.toml beside the recipe is ignored when the recipe names another one.
    write(tmp_path / "recipes", '[defaults]\nglobal-constraints = ["pip==1"]\n', "defaults.toml")
    path = write(tmp_path / "recipes", VALID + 'defaults = "../common.toml"\n')
    recipe = load_recipe(path)
    assert recipe.global_constraints == ("pip==25.1",)
    # The defaults file's relative paths resolve against its own folder.
    assert recipe.constraints == (f"--constraint {(tmp_path / 'upper.txt').resolve()}",)
    assert recipe.defaults_file == common.resolve()


def test_named_defaults_missing(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + 'defaults = "../nope.toml"\n')
    with pytest.raises(RecipeError, match=r"venv\.defaults: defaults file not found: \.\./nope\.toml"):
        load_recipe(path)


def test_unknown_key_in_defaults_names_defaults_file(tmp_path: Path) -> None:
    defaults = write(tmp_path, '[defaults]\nname = "x"\n', "defaults.toml")
    with pytest.raises(RecipeError) as info:
        load(tmp_path, VALID)
    assert str(info.value).startswith(f"{defaults}: defaults.name: unknown key")


def test_facts(tmp_path: Path) -> None:
    recipe = load(
        tmp_path,
        VALID
        + textwrap.dedent(
            """\
            [[venv.facts]]
            section = "demo"
            option = "need_db_expand"
            value = true
            [[venv.facts]]
            file = "other"
            section = "demo"
            option = "venv_tag"
            value = 31
            """
        ),
    )
    assert [(f.file, f.section, f.option, f.value) for f in recipe.facts] == [
        (DEFAULT_FACTS_FILE, "demo", "need_db_expand", "True"),
        ("other", "demo", "venv_tag", "31"),
    ]


def test_stage_options(tmp_path: Path) -> None:
    recipe = load(
        tmp_path,
        VALID
        + textwrap.dedent(
            """\
            symlink-system-packages = ["python3-libvirt", "python3-guestfs", "python3-libvirt"]
            [venv.build]
            distro-packages = ["libxml2-dev", "libffi-dev"]
            pip-args = ["--no-binary", ":all:"]
            env = { CFLAGS = "-O2", JOBS = 4 }
            """
        ),
    )
    assert recipe.symlink_system_packages == ("python3-guestfs", "python3-libvirt")
    assert recipe.build.distro_packages == ("libffi-dev", "libxml2-dev")
    assert recipe.build.pip_args == ("--no-binary", ":all:")
    assert recipe.build.env == {"CFLAGS": "-O2", "JOBS": "4"}
    assert recipe.install.env == {}


def test_fact_error_in_defaults_names_defaults_key_path(tmp_path: Path) -> None:
    defaults = write(tmp_path, '[[defaults.facts]]\noption = "a"\nvalue = "b"\n', "defaults.toml")
    with pytest.raises(RecipeError) as info:
        load(tmp_path, VALID)
    assert str(info.value) == f"{defaults}: defaults.facts[0].section: is required"


def test_build_pip_args_are_not_restricted_install_pip_args_are_checked(tmp_path: Path) -> None:
    args = '["--no-compile", "--index-url", "https://mirror.example/simple"]'
    recipe = load(tmp_path, VALID + f"[venv.build]\npip-args = {args}\n")
    assert recipe.build.pip_args == ("--no-compile", "--index-url", "https://mirror.example/simple")
    with pytest.raises(RecipeError, match=r"venv\.install\.pip-args\[0\]: '--no-compile' is not allowed"):
        load(tmp_path, VALID + f"[venv.install]\npip-args = {args}\n")
    recipe = load(
        tmp_path,
        VALID
        + '[venv.install]\npip-args = ["--progress-bar=off", "--timeout", "30"]\n'
        + 'distro-packages = ["libvirt0:amd64", "gcc-c++", "python3-libvirt"]\n',
    )
    assert recipe.install.pip_args == ("--progress-bar=off", "--timeout", "30")
    assert recipe.install.distro_packages == ("gcc-c++", "libvirt0:amd64", "python3-libvirt")


def test_install_path_below_a_home_is_allowed_the_home_is_not(tmp_path: Path) -> None:
    recipe = load(tmp_path, VALID.replace(INSTALL_PATH, '"/home/svc/venvs/demo/"'))
    assert str(recipe.install_path) == "/home/svc/venvs/demo"
    with pytest.raises(RecipeError, match=r"venv\.install-path: /home/svc is a home folder$"):
        load(tmp_path, VALID.replace(INSTALL_PATH, '"/home/svc/"'))


def test_recipes_loaded_together_have_disjoint_install_paths(tmp_path: Path) -> None:
    outer = write(tmp_path, VALID.replace(INSTALL_PATH, '"/openstack/venvs"'), "outer.toml")
    inner = write(tmp_path, VALID, "inner.toml")
    other = write(tmp_path, VALID.replace(INSTALL_PATH, '"/openstack/venvs-2/demo"'), "other.toml")
    assert [r.path for r in load_recipes([inner, other])] == [inner, other]
    with pytest.raises(RecipeError) as info:
        load_recipes([inner, outer])
    assert str(info.value) == (
        f"{outer}: venv.install-path: /openstack/venvs contains the install path of {inner}"
    )


def test_nesting_counts_brackets_of_syntax_not_of_strings(tmp_path: Path) -> None:
    b = "[" * 100
    text = VALID.replace('packages = ["foo"]', f'packages = ["foo"]  # {b}') + textwrap.dedent(
        f"""\
        [venv.install]
        env = {{ A = "{b}\\"{b}", B = '{b}' }}
        [[venv.facts]]
        section = "s"
        option = "o"
        value = \"\"\"{b}\"\"{b}\"\"\"
        [[venv.facts]]
        section = "s"
        option = "p"
        value = \'\'\'{b}\'{b}\'\'\'
        """
    )
    recipe = load(tmp_path, text)
    assert recipe.install.env == {"A": f'{b}"{b}', "B": b}
    assert [f.value for f in recipe.facts] == [f'{b}""{b}', f"{b}'{b}"]
    with pytest.raises(RecipeError, match=r"nested deeper than 64 levels$"):
        load(tmp_path, text + "x = " + "[" * 65 + "]" * 65 + "\n")


def test_fact_options_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    # Ansible folds option names to lower case and refuses the whole file where two collide.
    facts = '[[venv.facts]]\nsection = "s"\noption = "tag"\nvalue = 1\n'
    facts += '[[venv.facts]]\nsection = "s"\noption = "TAG"\nvalue = 2\n'
    with pytest.raises(RecipeError, match=r"venv\.facts\[1\]\.option: 'TAG' differs from 'tag' only in case"):
        load(tmp_path, VALID + facts)


# -- venvship check and venvship refs ------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_check_finds_what_load_finds(tmp_path: Path, bad: Bad) -> None:
    """One loader, two modes: check names the fault a build stops at (and may name more)."""
    path = write(tmp_path, bad.text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    recipes, faults = check_recipes([path])
    assert recipes == []
    assert str(info.value) in [str(f) for f in faults]


def test_check_reports_every_fault_of_every_recipe_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENVSHIP_CACHE", str(tmp_path / "cache"))
    three_typos = write(
        tmp_path,
        """\
        [venv]
        name = "Demo App"
        version = "1.0"
        instal-path = "/opt/venvs/demo"
        packages = ["six", 3]
        install-tool = "pipx"
        [venv.build]
        pip-arg = []
        [[venv.facts]]
        section = "s"
        option = "o"
        """,
        "typos.toml",
    )
    jinja = write(
        tmp_path,
        HEAD.replace('"1.0"', '"1.0 beta"') + 'packages = ["{{ pkg }}"]\npython = []\n',
        "jinja.toml",
    )
    good = write(tmp_path, VALID, "good.toml")
    assert main(["check", str(three_typos), str(jinja), str(good)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{good}: ok (demo 1.0, 1 packages)"]
    t, j = three_typos, jinja
    expected = [
        f"{t}: venv.instal-path: unknown key (did you mean 'install-path'?)",
        f"{t}: venv.name: 'Demo App' is not a valid artifact name",
        f"{t}: venv.install-path: is required",
        f"{t}: venv.install-tool: must be one of pip, uv, not 'pipx'",
        f"{t}: venv.packages[1]: must be a string, not integer",
        f"{t}: venv.build.pip-arg: unknown key (did you mean 'pip-args'?)",
        f"{t}: venv.facts[0].value: is required",
        f"{j}: venv.packages[0]: still holds Jinja",
        f"{j}: venv.version: '1.0 beta' is not usable as a tag",
        f"{j}: venv.python: must be an interpreter",
    ]
    lines = err.splitlines()
    assert len(lines) == len(expected), err
    for want in expected:
        assert sum(line.startswith(f"venvship: error: {want}") for line in lines) == 1, (want, err)
    assert "Traceback" not in err
    assert not (tmp_path / "cache").exists()  # nothing built, nothing cached


def test_check_reports_install_paths_that_clash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path, VALID, "a.toml")
    b = write(tmp_path, VALID.replace('"demo"', '"other"'), "b.toml")
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"venvship: error: {a}: venv.install-path: /openstack/venvs/demo-1.0 is also the install path of {b}"
    ]


def test_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, VALID)
    assert main(["check", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "schema": 1,
        "recipes": [{"recipe": str(good), "name": "demo", "version": "1.0"}],
    }
    bad = write(tmp_path, VALID.replace("install-path", "instal-path").replace('"1.0"', "1"), "bad.toml")
    assert main(["check", str(bad), "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"].splitlines()
    assert [line.split(": ")[1] for line in error] == [
        "venv.instal-path",
        "venv.version",
        "venv.install-path",
    ]


def test_refs_prints_each_recipes_index_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipes = tmp_path / "recipes"
    write(recipes, VALID.replace('"1.0"', '"31.0.0+osa.1"'), "b.toml")
    write(recipes, VALID.replace('"demo"', '"alpha"').replace("demo-1.0", "alpha"), "a.toml")
    (recipes / "defaults.toml").write_text('[defaults]\nglobal-constraints = ["pip==25.1"]\n')
    assert main(["refs", str(recipes)]) == 0
    assert capsys.readouterr().out.splitlines() == ["alpha:1.0", "demo:31.0.0_osa.1"]
    assert main(["refs", str(recipes / "b.toml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["refs"] == [
        {
            "recipe": str(recipes / "b.toml"),
            "name": "demo",
            "version": "31.0.0+osa.1",
            "tag": "31.0.0_osa.1",
            "ref": "demo:31.0.0_osa.1",
        }
    ]


def test_refs_of_a_bad_recipe_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, VALID.replace('"demo"', '"De mo"'))
    assert main(["refs", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"venvship: error: {bad}: venv.name: 'De mo' is not a valid artifact name (lowercase letters, digits, . _ -)"
    ]
    assert main(["refs", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("venvship: error: ")


def test_check_names_jinja_in_the_defaults_file_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, VALID)
    defaults = write(
        tmp_path, '[defaults]\nglobal-constraints = ["{{ pins }}"]\ninstal-tool = "uv"\n', "defaults.toml"
    )
    assert main(["check", str(recipe)]) == 1
    assert [line.split(": ", 4)[2:4] for line in capsys.readouterr().err.splitlines()] == [
        [str(defaults), "defaults.global-constraints[0]"],
        [str(defaults), "defaults.instal-tool"],
    ]
