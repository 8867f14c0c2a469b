"""The user-facing text: the README stays short, the docs site builds strictly (no broken link or
missing page), no internal issue number shows, every `make` target named exists, and the results
index links every study's reading."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from helpers.paths import REPO

README_MAX_LINES = 300
# An internal tracker reference: "issue 16", "issues 11 and 12", or a bare "#16". A reference
# qualified by its repository (alibaba/AliceMind#28) or a URL (.../issues/28) is one a reader can
# follow, and is allowed.
INTERNAL_ISSUE = re.compile(r"\bissues?\s+#?\d+|(?<![\w/.-])#\d+\b", re.IGNORECASE)
# A make target named in text: inside a code span (`make demo ...`) or at the start of a code line.
MAKE_TARGET = re.compile(r"`make ([a-z0-9][a-z0-9-]*)|^\s*make ([a-z0-9][a-z0-9-]*)", re.MULTILINE)


def user_facing_files() -> list:
    files = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "results").glob("*/README.md"))]
    assert len(files) > 10, files      # the docs and the study READMEs are there to be checked
    return files


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z0-9][a-z0-9-]*):", text, re.MULTILINE))


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ (limit {README_MAX_LINES})"


def test_no_internal_issue_numbers():
    hits = [f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}"
            for path in user_facing_files()
            for n, line in enumerate(path.read_text().splitlines(), 1) if INTERNAL_ISSUE.search(line)]
    assert not hits, "internal issue references (say what the thing is instead):\n" + "\n".join(hits)


def test_issue_pattern():
    for internal in ("issue 16's protocol", "(Issue 12)", "see #16", "issues 11 and 12"):
        assert INTERNAL_ISSUE.search(internal), internal
    for external in ("alibaba/AliceMind#28", "github.com/alibaba/AliceMind/issues/28", "layer 12", "[x](#set-up)"):
        assert not INTERNAL_ISSUE.search(external), external


def test_make_targets_named_in_docs_exist():
    targets = makefile_targets()
    assert {"help", "test", "demo"} <= targets
    named = {(path.relative_to(REPO), a or b) for path in user_facing_files()
             for a, b in MAKE_TARGET.findall(path.read_text())}
    assert any(t == "demo" for _, t in named)
    missing = sorted(f"{path}: make {t}" for path, t in named if t not in targets)
    assert not missing, "make targets named in the docs but not in the Makefile:\n" + "\n".join(missing)


def test_results_index_links_every_study():
    index = (REPO / "docs" / "results.md").read_text()
    studies = sorted(p.parent.name for p in (REPO / "results").glob("*/runs"))
    assert studies
    unlinked = [s for s in studies if f"](../results/{s}/README.md)" not in index]
    assert not unlinked, f"docs/results.md does not link these studies' README.md: {unlinked}"
    without_readme = [s for s in studies if not (REPO / "results" / s / "README.md").is_file()]
    assert not without_readme, f"committed studies without a results/<experiment>/README.md: {without_readme}"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[dev]' installs it)")
def test_docs_site_builds_strictly(tmp_path):
    """A broken link, a missing anchor, a page missing from the nav or a nav entry without a page
    is a warning, and --strict turns it into a failed build."""
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = tmp_path / "site"
    assert (site / "index.html").is_file()                                   # README.md, the home page
    assert (site / "results" / "table1_cpu" / "index.html").is_file()        # a study's README
    assert (site / "results" / "table1_cpu" / "table" / "index.html").is_file()
