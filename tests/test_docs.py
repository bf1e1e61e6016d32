"""The documentation: README's size, the MkDocs site, the generated reference, and nothing a
reader cannot follow (words about how the work was organised, paths outside the repository)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO
from kondo_bench import reference

README = REPO / "README.md"
# what the repository ships: run folders (runs/, multirun/, outputs/) are ignored by git, and a
# long figure run writing there meanwhile (absolute paths in its logs) is not the repository's text
IGNORED = {"runs", "multirun", "outputs"}
TEXTS = [README, *sorted((REPO / "docs").rglob("*.md")),
         *sorted(p for p in (REPO / "results").rglob("*")
                 if p.suffix in (".md", ".log", ".txt") and not IGNORED & set(p.relative_to(REPO).parts))]

# What a reader of the repository cannot follow: the tracker's numbers, how and when the work
# was organised, the machines it borrowed, and files that live outside the repository.
FORBIDDEN = {
    r"\bissues? #?\d+": "an issue number",
    r"(?<![\w`])#\d{1,4}\b(?!\s*:)": "an issue number",
    r"\bsessions?\b": "talk of work sessions",
    r"\bsittings?\b": "talk of sittings",
    r"\b(borrowed|lent|loaned)\b": "a borrowed or lent machine",
    r"\.\./shared|/work/|\bshared/docs\b": "a path outside the repository",
    r"\b(PAPER|SILENT|DESIGN)\.md\b": "a background file outside the repository",
    r"every machine of this project": "the project's own machines",
}


def offending(text: str) -> list[str]:
    return [f"{why}: {m.group(0)!r}" for pattern, why in FORBIDDEN.items()
            for m in re.finditer(pattern, text, flags=re.I)]


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_a_reader_cannot_follow(path):
    text = path.read_text()
    if path.suffix == ".log":  # the Hydra job list of a log numbers its jobs "#0 : ..."
        text = re.sub(r"\t#\d+ : ", "\t", text)
    assert not offending(text), f"{path.relative_to(REPO)}: {offending(text)}"


def test_the_check_catches_what_it_should():
    bad = ("see issue 12", "built over two sessions", "no GPU was lent to this work", "(`../shared/data/mnist`)",
           "/work/shared/data", "PAPER.md says", "as on every machine of this project", "fixed in #14")
    for text in bad:
        assert offending(text), text
    for text in ("the paper's Fig 3", "a sweep of 6 jobs", "results/REPORT.md", "shared by every task",
                 "`shared/data/mnist-full` beside the checkout"):
        assert not offending(text), text


def test_readme_reads_in_five_minutes():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"
    text = README.read_text()
    # the loop near the top, the two key findings stated, the two commands, a verdict table
    assert text.index("act") < text.index("## Quick start") and "account" in text[:text.index("## Quick start")]
    assert "make demo" in text and "make test" in text
    assert re.search(r"^\| claim \| the paper \| ours \| verdict \|$", text, flags=re.M)
    assert len(re.findall(r"!\[", text)) == 1, "README shows one figure"


def test_config_reference_is_generated_from_the_schema():
    page = REPO / "docs" / "reference" / "config.md"
    assert page.read_text() == reference.config_reference(), (
        "docs/reference/config.md is stale: run `python -m kondo_bench.reference --write docs/reference/config.md`")


def test_config_reference_covers_every_numeric_key():
    """Every numeric key of every registered schema appears with its declared range."""
    from kondo_bench.schema import numeric_fields

    page = reference.config_reference()
    for name, schema in reference.registered_schemas():
        for key, (_, rng, _) in numeric_fields(schema).items():
            assert re.search(rf"`(\w+\.)?{key}` \| [^|]+ \| {re.escape(str(rng))}", page), (name, key)


def test_mkdocs_builds_strict(tmp_path):
    """The site builds with every link and anchor checked (strict), offline."""
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()
