"""``venvship import-role``: the original role's variables become a recipe that loads."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from venvship.cli.venvship_main import main
from venvship.recipe.importrole import (
    ImportRoleError,
    import_role_file,
    import_role_vars,
    toml_string,
    toml_value,
)
from venvship.recipe.recipefile import load_recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROLE_VARS = Path(__file__).parent.parent / "resources" / "role-vars"
UPPER = "--constraint http://172.29.236.101:8181/constraints/upper_constraints_cached.txt"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["import-role", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def vars_file(folder: Path, text: str) -> Path:
    path = folder / "vars.yml"
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = """\
venv_install_destination_path: /openstack/venvs/demo-1.0
venv_pip_packages: [demo]
"""


# -- round trips ---------------------------------------------------------------------------------


def test_keystone_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recipes" / "keystone.toml"
    code, stdout, stderr = run([str(ROLE_VARS / "keystone.yml"), "-o", str(out)], capsys)
    assert code == 0, stderr
    assert stdout == f"{out}\n"
    assert stderr.splitlines() == [
        # Targets take install args from an allow-list (artifact/pipargs.py); keystone's install tool is uv.
        "ignored: venv_pip_install_args: '--no-compile' is not allowed in install pip-args: "
        "use `venv-pull install --no-compile`",
        "ignored: venv_pip_install_args: '--retries' is a pip option, and this venv installs with uv "
        "(uv's allowed options: -q, -v, --quiet, --verbose, --no-progress, --link-mode copy|hardlink|clone)",
        # Written out, not read from the implementation's table: a changed hint must fail here.
        "ignored: venv_rebuild: use `venv-pull install --rebuild` on the target",
        "ignored: venv_wheels_rebuild: use `venvship build --rebuild-wheels`",
        "ignored: venv_build_group: no build host: `venvship build` builds where it runs, once per distro and arch",
    ]
    recipe = load_recipe(out)
    assert (recipe.name, recipe.version) == ("keystone", "31.0.0")
    assert str(recipe.install_path) == "/openstack/venvs/keystone-31.0.0"
    assert recipe.packages == (
        "PyMySQL",
        "keystone @ git+https://opendev.org/openstack/keystone@5a4b1fd8c2d7a0e6e1f3c1d5b0a9e8f7c6d5e4f3",
        "ldappool",
        "osprofiler",
        "pymemcache",
        "python-memcached",
        "systemd-python",
        "uWSGI",
    )
    assert recipe.constraints == (UPPER,)
    assert recipe.global_constraints[:3] == ("pip==25.1.1", "setuptools==80.9.0", "wheel==0.45.1")
    assert recipe.install_tool == "uv"
    assert recipe.build.distro_packages == (
        "libldap2-dev",
        "libsasl2-dev",
        "libssl-dev",
        "libxml2-dev",
        "libxslt1-dev",
    )
    assert recipe.install.pip_args == ()
    assert "pip-args" not in out.read_text()  # both dropped: no `pip-args = []` written
    assert recipe.install.env == {"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
    assert [(f.file, f.section, f.option, f.value) for f in recipe.facts] == [
        ("openstack_ansible", "keystone", "need_db_expand", "True"),
        ("openstack_ansible", "keystone", "need_db_contract", "True"),
        ("openstack_ansible", "keystone", "venv_tag", "31.0.0"),
        ("openstack_ansible", "keystone", "install_method", "source"),
    ]


def test_nova_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nova.toml"
    code, _, stderr = run([str(ROLE_VARS / "nova.yml"), "-o", str(out)], capsys)
    assert code == 0, stderr
    assert "ignored: venv_wheel_build_enable: " in stderr
    assert "ignored: venv_default_pip_install_args: " in stderr
    recipe = load_recipe(out)
    assert (recipe.name, recipe.version) == ("nova", "31.0.0")
    assert recipe.symlink_system_packages == ("python3-guestfs", "python3-libvirt")
    assert recipe.package_state == "latest"
    assert recipe.distro_package_state == "present"
    assert recipe.distro_cache_valid_time == 3600
    assert recipe.ignore_pip_config is True  # `yes` in YAML
    assert recipe.build.pip_args == ("--no-binary", ":none:", "--retries", "3")
    assert recipe.build.env == {"PBR_VERSION": "31.0.0"}
    assert recipe.install.distro_packages == ("libvirt0", "qemu-utils")
    assert [f.option for f in recipe.facts] == [
        "need_service_restart",
        "need_online_data_migrations",
        "venv_tag",
    ]
    assert {f.value for f in recipe.facts} == {"True", "31.0.0"}


def test_stdout_without_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = run([str(vars_file(tmp_path, MINIMAL))], capsys)
    assert (code, stderr) == (0, "")
    data = tomllib.loads(stdout)
    assert data == {
        "venv": {
            "name": "demo",
            "version": "1.0",
            "install-path": "/openstack/venvs/demo-1.0",
            "packages": ["demo"],
        }
    }
    assert list(tmp_path.iterdir()) == [tmp_path / "vars.yml"]


def test_name_version_and_local_constraints(tmp_path: Path) -> None:
    (tmp_path / "upper.txt").write_text("demo==1.0\n")
    path = vars_file(
        tmp_path,
        f"""\
        venv_install_destination_path: /opt/venvs/tools
        venv_pip_packages: [demo]
        venv_build_constraints: ["--constraint {tmp_path / "upper.txt"}", "", null]
        venv_build_requirements_extra: [maturin]
        venv_pip_install_args: "--index-url 'https://mirror.example/simple page' --timeout 30 -q"
        """,
    )
    result = import_role_file(path, name="tools", version="2025.1")
    recipe_path = tmp_path / "tools.toml"
    recipe_path.write_text(result.toml)
    recipe = load_recipe(recipe_path)
    assert (recipe.name, recipe.version) == ("tools", "2025.1")
    assert recipe.constraint_files() == (tmp_path / "upper.txt",)
    assert recipe.build_requirements == ("pbr", "setuptools", "wheel", "maturin")
    # Targets install offline: an index is no install arg (artifact/pipargs.py); the value goes with it.
    assert recipe.install.pip_args == ("--timeout", "30", "-q")
    assert result.warnings[0].startswith("ignored: venv_pip_install_args: '--index-url' is not allowed")


def test_facts_dest(tmp_path: Path) -> None:
    result = import_role_vars(
        {
            "venv_install_destination_path": "/openstack/venvs/demo-1.0",
            "venv_pip_packages": ["demo"],
            "venv_facts_dest": "demo_facts",
            "venv_facts_when_changed": [{"section": "demo", "option": "n", "value": 3}],
        }
    )
    assert tomllib.loads(result.toml)["venv"]["facts"] == [
        {"file": "demo_facts", "section": "demo", "option": "n", "value": 3}
    ]


def test_existing_output_kept_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = vars_file(tmp_path, MINIMAL)
    out = tmp_path / "demo.toml"
    out.write_text("# mine\n")
    code, _, stderr = run([str(path), "-o", str(out)], capsys)
    assert code == 1
    assert stderr == f"venvship: error: {out}: already exists (pass --force to replace it)\n"
    assert out.read_text() == "# mine\n"
    code, _, _ = run([str(path), "-o", str(out), "--force"], capsys)
    assert code == 0
    assert load_recipe(out).name == "demo"


# -- errors: nothing written, every fault listed -------------------------------------------------


def test_missing_install_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = vars_file(tmp_path, "venv_pip_packages: [demo]\n")
    out = tmp_path / "demo.toml"
    code, stdout, stderr = run([str(path), "-o", str(out)], capsys)
    assert (code, stdout) == (1, "")
    lines = stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"venvship: error: {path}: venv_install_destination_path: is required")
    assert not out.exists()


def test_unknown_variables_with_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = vars_file(
        tmp_path,
        MINIMAL + "venv_pip_pakages: [x]\nvenv_instal_tool: uv\nkeystone_bind_port: 5000\n",
    )
    out = tmp_path / "demo.toml"
    code, _, stderr = run([str(path), "-o", str(out)], capsys)
    assert code == 1
    assert stderr.splitlines() == [
        f"venvship: error: {path}: venv_pip_pakages: unknown variable (did you mean 'venv_pip_packages'?)",
        f"venvship: error: {path}: venv_instal_tool: unknown variable (did you mean 'venv_install_tool'?)",
        f"venvship: error: {path}: keystone_bind_port: unknown variable",
    ]
    assert not out.exists()


def test_jinja_values_fail_listing_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keystone.toml"
    code, _, stderr = run([str(ROLE_VARS / "keystone-templated.yml"), "-o", str(out)], capsys)
    assert code == 1
    assert not out.exists()
    errors = [line for line in stderr.splitlines() if line.startswith("venvship: error: ")]
    flagged = [line.split(": ")[3] for line in errors if "still holds Jinja" in line]
    assert flagged == [
        "venv_python_executable",
        "venv_build_constraints",
        "venv_install_destination_path",
        "venv_pip_install_args",
        "venv_pip_packages[1]",
        "venv_facts_when_changed[0].value",
    ]
    assert all("--keep-templates" in line for line in errors if "still holds Jinja" in line)


def test_keep_templates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keystone.toml"
    argv = [str(ROLE_VARS / "keystone-templated.yml"), "-o", str(out), "--keep-templates"]
    code, _, stderr = run([*argv, "--name", "keystone", "--version", "31.0.0"], capsys)
    assert code == 0, stderr
    assert stderr.count("template kept: ") == 6
    venv = tomllib.loads(out.read_text())["venv"]
    assert venv["install-path"] == "{{ keystone_bin | dirname }}"
    assert venv["constraints"] == "{{ keystone_git_constraints }}"
    assert venv["packages"][1] == "{{ keystone_pip_packages_extra | join(',') }}"
    assert venv["install"]["pip-args"] == "{{ keystone_pip_install_args }}"
    assert venv["facts"][0]["value"] == "{{ keystone_venv_tag }}"


def test_keep_templates_version_from_templated_path() -> None:
    result = import_role_vars(
        {
            "venv_install_destination_path": "/openstack/venvs/keystone-{{ venv_tag }}",
            "venv_pip_packages": ["k"],
        },
        keep_templates=True,
    )
    assert (result.name, result.version) == ("keystone", "{{ venv_tag }}")
    with pytest.raises(ImportRoleError, match="venv_install_destination_path: still holds Jinja"):
        import_role_vars({"venv_install_destination_path": "/openstack/venvs/keystone-{{ venv_tag }}"})


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            "venv_install_tool: pipp\n",
            "venv_install_tool: must be one of pip, uv, not 'pipp' (did you mean 'pip'?)",
        ),
        ("venv_pip_packages: demo\n", "venv_pip_packages: must be a list of strings, not str"),
        (
            "venv_build_global_constraints: ['pip >>= 1']\n",
            "venv_build_global_constraints[0]: invalid requirement",
        ),
        ('venv_pip_install_args: "--index-url \'x"\n', "venv_pip_install_args: cannot split"),
        ("venv_distro_cache_valid_time: soon\n", "venv_distro_cache_valid_time: must be a number of seconds"),
        ("venv_pip_upgrade_noconf: maybe\n", "venv_pip_upgrade_noconf: must be true or false"),
        ("venv_pip_install_env: {A: [1]}\n", "venv_pip_install_env.A: must be a string or number"),
        (
            "venv_facts_when_changed: [{option: a, value: b}]\n",
            "venv_facts_when_changed[0].section: is required",
        ),
        ("venv_facts_when_changed: [{section: s, option: a, vaule: b}]\n", "(did you mean 'value'?)"),
    ],
)
def test_bad_values(tmp_path: Path, extra: str, says: str) -> None:
    text = (
        MINIMAL.replace("venv_pip_packages: [demo]\n", "")
        if extra.startswith("venv_pip_packages")
        else MINIMAL
    )
    with pytest.raises(ImportRoleError) as info:
        import_role_file(vars_file(tmp_path, text + extra))
    assert says in str(info.value)
    assert "\n" not in str(info.value) or all(p.startswith(str(tmp_path)) for p in info.value.problems)


def test_name_not_derivable(tmp_path: Path) -> None:
    path = vars_file(tmp_path, "venv_install_destination_path: /opt/tools\nvenv_pip_packages: [x]\n")
    with pytest.raises(
        ImportRoleError, match=r"cannot tell the venv's name and version from 'tools'.*pass --version$"
    ):
        import_role_file(path)
    assert import_role_file(path, version="1").name == "tools"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("venv_pip_packages: [a\n", "invalid YAML at line 2"),
        ("- a\n- b\n", "must be a mapping of variables"),
    ],
)
def test_bad_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str) -> None:
    code, _, stderr = run([str(vars_file(tmp_path, text))], capsys)
    assert code == 1
    assert len(stderr.splitlines()) == 1
    assert says in stderr


def test_missing_vars_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = run([str(tmp_path / "nope.yml")], capsys)
    assert (code, stderr) == (1, f"venvship: error: {tmp_path / 'nope.yml'}: file not found\n")


# -- the TOML emitter ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['a "quoted" \\ back', "tab\tnew\nline", "del\x7f bell\x07", "ünï 🐍", "{{ x | default('') }}", ""],
)
def test_toml_string_round_trips(text: str) -> None:
    assert tomllib.loads(f"k = {toml_string(text)}")["k"] == text


def test_toml_value_round_trips() -> None:
    value = {"plain": ["a", 1, 2.5, True], "needs quotes.here": {"x y": "z"}, "empty": {}}
    assert tomllib.loads(f"k = {toml_value(value)}")["k"] == value


def _alias_bomb(levels: int) -> str:
    """A vars file of a few hundred bytes whose aliases expand to 9**levels strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels + 1):
        lines.append(f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 9) + "]")
    return (
        "venv_install_destination_path: /openstack/venvs/demo-1.0\n"
        + "\n".join(lines)
        + (f"\nvenv_pip_packages: *a{levels}\n")
    )


def test_yaml_aliases_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Small enough that the old behaviour (expand, then print the value) stays harmless here.
    path = vars_file(tmp_path, _alias_bomb(5))
    assert path.stat().st_size < 600
    code, _, stderr = run([str(path)], capsys)
    assert code == 1
    assert len(stderr) < 300, stderr[:300]
    assert stderr.startswith(f"venvship: error: {path}: ")
    assert "YAML aliases" in stderr


def test_vars_file_size_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = vars_file(tmp_path, MINIMAL + "# padding\n" * 200_000)
    code, _, stderr = run([str(path)], capsys)
    assert code == 1
    assert stderr == f"venvship: error: {path}: larger than 1024 KiB: not a role's variables file\n"
