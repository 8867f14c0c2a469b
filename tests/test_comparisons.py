"""The `table.comparisons:` declaration (childtuning/comparisons.py): defaults, checks, digest, and
that every experiment with comparisons declares one."""
import ast
import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from childtuning import comparisons
from childtuning.errors import InputError

from helpers.paths import REPO

AMENDED = [{"date": "2026-12-05", "reason": "declared after the records"}]


def test_defaults_are_the_seed_paired_t():
    decl = comparisons.read(None, "x")
    assert (decl.design, decl.interval, decl.test, decl.level, decl.margin, decl.joins, decl.amended) == \
        ("paired", "t", "t", 0.95, None, None, ())
    assert comparisons.read({}, "x") == decl
    assert comparisons.read({"margin": None, "amended": None}, "x") == decl


@pytest.mark.parametrize("block, match", [
    ({"desing": "paired"}, r"unknown key\(s\) desing; the keys are design"),
    ({"design": "matched"}, r"design must be one of paired, unpaired"),
    ({"interval": "percentile"}, r"interval must be one of t, bca"),
    ({"test": "wilcoxon"}, r"test must be one of t, sign_flip"),
    ({"design": "unpaired", "test": "sign_flip"}, r"unpaired comparison always uses Welch"),
    ({"design": "unpaired", "interval": "bca"}, r"unpaired comparison always uses Welch"),
    ({"level": 95}, r"level must be a number in \[0.5, 1\)"),
    ({"level": True}, r"level must be a number"),
    ({"margin": 0}, r"margin must be null or a positive number"),
    ({"margin": "1pt"}, r"margin must be null or a positive number"),
    ({"joins": "../other"}, r"joins must be null or another experiment's name"),
    ({"amended": {"date": "2026-12-05"}}, r"amended must be a list"),
    ({"amended": [{"date": "2026-12-05"}]}, r"amended\[0\] must have exactly the keys date and reason"),
    ({"amended": [{"date": "05/12/2026", "reason": "x"}]}, r"amended\[0\].date must be a date written YYYY-MM-DD"),
    ({"amended": [{"date": "2026-13-05", "reason": "x"}]}, r"amended\[0\].date must be a date"),
    ({"amended": [{"date": "2026-12-05", "reason": " "}]}, r"amended\[0\].reason must say why"),
    ([1, 2], r"must be a mapping"),
])
def test_bad_declarations_name_the_key_and_the_fix(block, match):
    with pytest.raises(InputError, match=r"exp.yaml: table.comparisons.*" + match):
        comparisons.read(block, "exp.yaml: table.comparisons")


def test_a_yaml_date_and_an_omegaconf_node_read_as_the_plain_block():
    text = "design: paired\nmargin: 1\namended: [{date: 2026-12-05, reason: why}]\n"
    plain = comparisons.read(yaml.safe_load(text))           # YAML reads the date as a datetime.date
    assert plain.amended == (comparisons.Amendment("2026-12-05", "why"),) and plain.margin == 1.0
    assert comparisons.read(OmegaConf.create(text)) == plain


def test_digest_covers_the_family_and_tests_not_the_amendments():
    base = comparisons.digest(None)
    assert len(base) == 16 and int(base, 16) >= 0
    assert comparisons.digest({"design": "paired", "interval": "t", "test": "t", "level": 0.95}) == base
    assert comparisons.digest({"amended": AMENDED}) == base                  # an amendment changes no test
    assert comparisons.digest({"margin": 1}) == comparisons.digest({"margin": 1.0}) != base
    changed = [{"test": "sign_flip"}, {"interval": "bca"}, {"level": 0.9}, {"joins": "other"}, {"design": "unpaired"}]
    assert len({base, *(comparisons.digest(b) for b in changed)}) == len(changed) + 1
    with pytest.raises(InputError):
        comparisons.digest({"level": 2})


def test_the_module_imports_nothing_of_childtuning_but_the_errors():
    """The runner imports it: it must not pull in the report package (or anything above it)."""
    tree = ast.parse((REPO / "childtuning" / "comparisons.py").read_text())
    imported = {(n.module or "", n.level) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {(a.name, 0) for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m, level in imported if level > 0 or m.startswith("childtuning")}
    assert ours == {"errors"}, ours


def experiment_files() -> list[Path]:
    return sorted((REPO / "experiments").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", experiment_files(), ids=lambda p: p.stem)
def test_every_experiment_with_comparisons_declares_them(path):
    """An experiment whose table compares (a baseline, not the overlap kind) declares its block in
    its file (or inherits it whole), checked; one with committed records made before that
    declaration (no comparisons_digest, or another one) states an amendment."""
    from childtuning.report.spec import load_spec

    spec = load_spec(path.stem)
    if spec.baseline is None or spec.kind == "overlap":
        return
    own = (yaml.safe_load(path.read_text()) or {}).get("table") or {}
    assert "comparisons" in own, f"{path.name}: declare table.comparisons"
    runs = sorted((REPO / "results" / path.stem / "runs").glob("*.json"))
    current = spec.comparisons.digest()
    earlier = [r.name for r in runs if json.loads(r.read_text()).get("comparisons_digest") != current]
    if earlier:
        assert spec.comparisons.amended, (f"{path.name}: {len(earlier)} committed record(s) predate the declaration "
                                          f"(e.g. {earlier[0]}): state it in amended")
