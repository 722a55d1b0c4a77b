"""Requirement and constraint lines: every form a pip requirements or constraints file takes, in
recipes and in ``import-role``, tested line by line and over the real files shipped in recipes/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from venvship.errors import RecipeError
from venvship.recipe.importrole import import_role_vars
from venvship.recipe.recipefile import load_recipe
from venvship.recipe.requirements import Include, Option, Req, expand, parse_line
from venvship.redact import redact

ROOT = Path(__file__).resolve().parents[2]
BASE = "/srv/recipes"

# (line as given, what it is: None for nothing, else the parsed value)
LINES: list[tuple[str, object]] = [
    ("", None),
    ("   ", None),
    ("# a comment", None),
    ("alpha==1.0  # trailing comment", Req("alpha==1.0")),
    ("-c upper.txt", Include("constraints", "upper.txt", "-c")),
    ("-cupper.txt", Include("constraints", "upper.txt", "-c")),
    ("--constraint upper.txt", Include("constraints", "upper.txt", "--constraint")),
    (
        "--constraint=https://releases.example.org/upper.txt",
        Include("constraints", "https://releases.example.org/upper.txt", "--constraint"),
    ),
    ("-r ../base.txt", Include("requirements", "../base.txt", "-r")),
    ("--requirement file:///srv/reqs.txt", Include("requirements", "file:///srv/reqs.txt", "--requirement")),
    ("Jinja2===3.1.4", Req("Jinja2===3.1.4")),
    ("pyOpenSSL===24.2.1;python_version=='3.9'", Req("pyOpenSSL===24.2.1;python_version=='3.9'")),
    (
        "requests[socks,security]>=2.31 ; python_version >= '3.8'",
        Req("requests[socks,security]>=2.31 ; python_version >= '3.8'"),
    ),
    (
        "git+https://opendev.org/openstack/keystone@5a4b1fd8#egg=keystone",
        Req("keystone @ git+https://opendev.org/openstack/keystone@5a4b1fd8"),
    ),
    (
        "git+https://opendev.org/openstack/x@abc#egg=x&subdirectory=py",
        Req("x @ git+https://opendev.org/openstack/x@abc#subdirectory=py"),
    ),
    ("gamma @ git+file:///srv/git/gamma@0123abc", Req("gamma @ git+file:///srv/git/gamma@0123abc")),
    ("git+file:///srv/git/gamma@0123abc#egg=gamma", Req("gamma @ git+file:///srv/git/gamma@0123abc")),
    ("https://files.example.org/delta-1.2.tar.gz", Req("delta @ https://files.example.org/delta-1.2.tar.gz")),
    (
        "https://files.example.org/eps_ilon-2.0-py3-none-any.whl",
        Req("eps-ilon @ https://files.example.org/eps_ilon-2.0-py3-none-any.whl"),
    ),
    ("file:///srv/wheels/zeta-3.0.zip", Req("zeta @ file:///srv/wheels/zeta-3.0.zip")),
    ("./vendor/eta-1.0.tar.gz", Req(f"eta @ file://{BASE}/vendor/eta-1.0.tar.gz")),
    ("/opt/src/theta-4.0.tar.gz", Req("theta @ file:///opt/src/theta-4.0.tar.gz")),
    ("iota @ ./src/iota", Req(f"iota @ file://{BASE}/src/iota")),
    ("kappa==1.0 --hash=sha256:" + "a" * 64, Req("kappa==1.0", "--hash=sha256:" + "a" * 64)),
    (
        "--index-url https://mirror.example.org/simple",
        Option("--index-url https://mirror.example.org/simple"),
    ),
    ("--find-links /srv/wheels", Option("--find-links /srv/wheels")),
    ("--pre", Option("--pre")),
]


@pytest.mark.parametrize(("line", "expected"), LINES, ids=[repr(line) for line, _ in LINES])
def test_every_line_form_of_a_pip_file(line: str, expected: object) -> None:
    assert parse_line(line, "here", base=BASE) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not a requirement!", "invalid requirement"),
        ("https://example.org/download?id=3", "write it as NAME @ https://example.org/download?id=3"),
        ("-e ./src/alpha", "editable installs cannot go into an artifact"),
        ("git+https://example.org/repo@abc", "write it as NAME @"),
    ],
)
def test_lines_that_are_no_requirement_say_why(line: str, message: str) -> None:
    with pytest.raises(RecipeError) as err:
        parse_line(line, "recipes/x.toml: venv.constraints[3]", base=BASE)
    assert str(err.value).startswith("recipes/x.toml: venv.constraints[3]: ")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["keystone-upper-constraints.txt", "demo-constraints.txt"])
def test_the_upstream_constraint_files_in_recipes_parse_line_by_line(name: str) -> None:
    path = ROOT / "recipes" / name
    got = expand([(f"-c {path}", "recipe")], kind="constraints", base=str(path.parent))
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(got.constraints) == len(lines) > 0
    assert got.requirements == [] and got.files == [(str(path), path.read_bytes())]


def test_a_recipe_takes_every_line_form(tmp_path: Path) -> None:
    (tmp_path / "upper.txt").write_text(
        "# upstream\nalpha===1.0 \\\n  ; python_version >= '3'\n-r reqs.txt\n"
    )
    (tmp_path / "reqs.txt").write_text("beta>=2\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[venv]\nname = "r"\nversion = "1"\ninstall-path = "/opt/venvs/r"\n'
        'packages = ["# the service", "alpha", "", "git+file:///srv/git/gamma@0123abc#egg=gamma"]\n'
        'constraints = ["# pins", "-c upper.txt", "delta===1.0;python_version<\'3.10\'", ""]\n'
        'global-constraints = ["pip==26.3  # pinned"]\n'
    )
    r = load_recipe(recipe)
    assert r.packages == ("alpha", "gamma @ git+file:///srv/git/gamma@0123abc")
    assert r.constraints == (f"-c {tmp_path / 'upper.txt'}", "delta===1.0;python_version<'3.10'")
    assert r.global_constraints == ("pip==26.3",)
    flat = expand([(c, "w") for c in r.constraints], kind="constraints", base=str(tmp_path))
    assert flat.constraints == ["alpha===1.0 ; python_version >= '3'", "delta===1.0;python_version<'3.10'"]
    assert flat.requirements == ["beta>=2"]  # -r inside a constraints file: requirements, as pip reads it


def test_import_role_takes_the_lines_of_an_upstream_constraints_file(tmp_path: Path) -> None:
    """OpenStack-Ansible passes an upstream file's lines as venv_build_constraints, comments included."""
    upstream = (ROOT / "recipes" / "keystone-upper-constraints.txt").read_text().splitlines()
    variables = yaml.safe_load((ROOT / "tests" / "resources" / "role-vars" / "keystone.yml").read_text())
    variables["venv_build_constraints"] = [
        *upstream,
        "",
        None,
        "-c extra.txt",
        "git+file:///srv/git/keystone@abc#egg=keystone",
    ]
    result = import_role_vars(variables)
    out = tmp_path / "keystone.toml"
    out.write_text(result.toml)
    (tmp_path / "extra.txt").write_text("alpha===1.0\n")
    recipe = load_recipe(out)
    pins = [ln for ln in upstream if ln.strip() and not ln.startswith("#")]
    assert recipe.constraints == (
        *pins,
        f"-c {tmp_path / 'extra.txt'}",
        "keystone @ git+file:///srv/git/keystone@abc",
    )
    written = tomllib.loads(result.toml)["venv"]["constraints"]
    assert "" not in written and written[0].startswith("# From openstack/requirements")  # comments kept


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("-c https://ci:TOKEN@h/u.txt?token=TOKEN", "-c https://h/u.txt"),
        (
            "demo @ http://user:TOKEN@h/demo-1.0.tar.gz ; python_version >= '3'",
            "demo @ http://h/demo-1.0.tar.gz ; python_version >= '3'",
        ),
        (
            "demo @ git+https://TOKEN@h/x.git@abc#egg=demo&subdirectory=py&x=TOKEN",
            "demo @ git+https://h/x.git@abc#egg=demo&subdirectory=py",
        ),
        ("demo==1.0", "demo==1.0"),
        # A local repository's URL keeps its "//" (urlunsplit drops it for a scheme it does not know).
        ("demo @ git+file:///srv/git/demo@abc", "demo @ git+file:///srv/git/demo@abc"),
    ],
)
def test_published_lines_lose_credentials(line: str, shown: str) -> None:
    assert redact(line) == shown
