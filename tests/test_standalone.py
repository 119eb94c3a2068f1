"""The product stands alone: nothing it ships cites a document that does not ship with it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Internal design documents and the tracker are not part of the product; neither are their section signs.
CITATION = re.compile(r"\bSPEC\b|§|ARCHITECTURE\.md|\bissue \d+")
SHIPPED = ["campaign_cli", "docs", "examples", "bench", "tests", "README.md", "pyproject.toml"]
PATH_IN_TEXT = re.compile(r"(?<![\w/.-])((?:docs|examples|bench)/[\w./-]*\w)")


def shipped_files() -> list[Path]:
    files = []
    for name in SHIPPED:
        path = ROOT / name
        files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in {".py", ".md", ".yaml", ".sh",
                                                                                       ".toml", ".txt", ".jsonl"})
                     if path.is_dir() else [path])
    return [p for p in files if "__pycache__" not in p.parts]


def test_no_help_text_error_readme_line_or_comment_cites_an_unshipped_document():
    this = Path(__file__).resolve()
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in shipped_files() if p != this
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if CITATION.search(line)]
    assert found == []


def test_every_project_path_the_docs_name_exists():
    missing = [f"{p.relative_to(ROOT)}: {m}"
               for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
               for m in PATH_IN_TEXT.findall(p.read_text(encoding="utf-8"))
               if "*" not in m and not (ROOT / m).exists()]
    assert missing == []
