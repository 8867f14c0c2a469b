"""A reading quotes its table: every interval "[lo, hi]" and every adjusted or raw p ("Holm 0.0285",
"p 0.00897") written in a study's README, or in docs/statistics.md, appears in the committed
table.md of that study or of a study the text links to. A figure left over from an earlier table,
or typed by hand, fails here; the tables themselves are rebuilt from the records by
test_committed_results.py. A figure that the text quotes on purpose from an earlier reading (to say
what changed) sits in a sentence that says "earlier reading" and is not checked."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers.paths import REPO

RESULTS = REPO / "results"
READMES = sorted(p for p in RESULTS.glob("*/README.md") if (p.parent / "table.md").is_file())
INTERVAL = re.compile(r"\[([−+-]?\d[\d.]*), ([−+-]?\d[\d.]*)\]")
P_VALUE = re.compile(r"\b(?:Holm|p) (\d(?:\.\d+)?(?:e-\d+)?)(?!\d|\.\d)")
LINK = re.compile(r"\]\((?:\.\./)+(?:results/)?([\w-]+)/(?:README|table)\.md\)|`results/([\w-]+)/table\.md`")
OLD = "earlier reading"


def plain(text: str) -> str:
    return text.replace("−", "-")


def quoted(text: str) -> list[str]:
    """Each checked figure of `text` as its table prints it ("[lo, hi]" or "| p |"), leaving out
    those in a sentence that quotes an earlier reading."""
    found = []
    for m in list(INTERVAL.finditer(text)) + list(P_VALUE.finditer(text)):
        sentence = re.split(r"(?<=[a-z)])\. ", text[max(0, m.start() - 120):m.start()])[-1]
        if OLD not in sentence:
            found.append(plain(f"[{m.group(1)}, {m.group(2)}]") if m.re is INTERVAL else f"| {m.group(1)} |")
    return found


def check(path: Path, study: str | None):
    """`path`'s reading (all of it where it has no "## Reading" section) against the table.md of
    `study` and of every study it links to."""
    text = path.read_text()
    studies = ({study} if study else set()) | {a or b for a, b in LINK.findall(text)}
    tables = "\n".join(plain((RESULTS / s / "table.md").read_text()) for s in sorted(studies)
                       if (RESULTS / s / "table.md").is_file())
    reading = text[text.index("## Reading"):] if "## Reading" in text else text
    missing = [f for f in quoted(reading) if f not in tables]
    assert not missing, (f"{path.relative_to(REPO)} quotes figures that no table it names carries: {missing}. "
                         "Quote the regenerated table (results/<study>/table.md), link the study whose table "
                         "it comes from, or say it is the earlier reading's figure")


@pytest.mark.skipif(not READMES, reason="no study README beside a table under results/")
@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_a_reading_quotes_its_table(readme):
    check(readme, readme.parent.name)


def test_the_statistics_page_quotes_committed_tables():
    check(REPO / "docs" / "statistics.md", None)


def test_the_check_finds_a_figure_no_table_carries():
    """The check is not vacuous: an interval or a p that is in no table fails, one that is passes,
    and an earlier reading's figure is let through."""
    table = "| a | +0.97 | [+0.56, +1.38] | 0.00285 | 0.0285 | 5/5 |"
    assert quoted("CoLA +0.97 [+0.56, +1.38], p 0.00285, Holm 0.0285.") == [
        "[+0.56, +1.38]", "| 0.00285 |", "| 0.0285 |"]
    assert all(f in table for f in quoted("CoLA +0.97 [+0.56, +1.38], Holm 0.0285."))
    assert [f for f in quoted("CoLA +0.97 [+0.56, +1.39], Holm 0.0286.") if f not in table] == [
        "[+0.56, +1.39]", "| 0.0286 |"]
    assert quoted("The earlier reading's interval, [−23.82, −19.16], was unpaired.") == []
    assert quoted("Shown: −21.49 [−30.20, −12.77], Holm 0.0351.") == ["[-30.20, -12.77]", "| 0.0351 |"]
