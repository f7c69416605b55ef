"""Every ``docs/<file>.md [§N]`` cited in the package, the tests, the recipes, README.md and docs/ exists.

Pure text: the files are read, nothing is imported. A citation is ``docs/<name>.md``, optionally in
backticks or quotes, optionally followed by sections: ``§3``, ``§3.2``, ``§1-§3``, ``§1-§3 and §7``,
``§1, §2``. A section N exists when the cited file has a Markdown heading numbered N (``## §3 ...``,
``### §3.2 ...`` or ``## 3. ...``) outside code blocks.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
THIS_FILE = Path(__file__).resolve()

SECTION = r"§\s*\d+(?:\.\d+)*"
CITATION = re.compile(
    r"docs/(?P<name>[A-Za-z0-9_-]+\.md)[`'\"]*"
    rf"(?P<sections>\s*{SECTION}(?:\s*(?:(?:[-–]|to)\s*§?\s*\d+(?:\.\d+)*|(?:,|and)\s*{SECTION}))*)?"
)
SECTION_NUMBER = re.compile(r"§?\s*(\d+(?:\.\d+)*)")
# a Markdown file name followed by a section mark: must be a docs/ path
ANY_MD_WITH_SECTION = re.compile(r"(?P<path>[\w./-]*\.md)[`'\"]*\s*§")
HEADING = re.compile(r"^#{1,6}\s+§?\s*(\d+(?:\.\d+)*)[.\s]")

Citation = Tuple[str, int, str, List[str]]  # (source file, line, cited doc name, sections)


def scanned_files() -> List[Path]:
    """The package, the tests (but this file), the recipes, README.md and the docs themselves."""
    files = sorted((ROOT / "avfewshot").rglob("*.py"))
    files += sorted(p for p in (ROOT / "tests").rglob("*.py") if p.resolve() != THIS_FILE)
    files += sorted((ROOT / "runners").rglob("*.yaml")) + sorted((ROOT / "runners").rglob("*.sh"))
    files += [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
    return [p for p in files if p.is_file()]


def citations_in(text: str) -> Iterator[Tuple[int, str, List[str]]]:
    """(1-based line, cited doc name, cited section numbers) for every citation in ``text``."""
    for number, line in enumerate(text.splitlines(), start=1):
        for match in CITATION.finditer(line):
            sections = SECTION_NUMBER.findall(match.group("sections") or "")
            yield number, match.group("name"), sections


def headings(doc: Path) -> Set[str]:
    """Section numbers of the headings of a Markdown file (lines inside ``` blocks are not headings)."""
    numbers: Set[str] = set()
    in_code = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else HEADING.match(line + " ")
        if match:
            numbers.add(match.group(1))
    return numbers


def all_citations() -> List[Citation]:
    found = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8")
        for line, name, sections in citations_in(text):
            found.append((str(path.relative_to(ROOT)), line, name, sections))
    return found


# -- the parser itself ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("see docs/dgsct.md §3.2), in the", [("dgsct.md", ["3.2"])]),
    ("quirks (``docs/datasets.md`` §1-§3 and §7) and", [("datasets.md", ["1", "3", "7"])]),
    ("``docs/supervised.md`` §0", [("supervised.md", ["0"])]),
    ("(see docs/datasets.md for the layout) and docs/x.md §2, §4", [("datasets.md", []), ("x.md", ["2", "4"])]),
    ("docs/supervised.md §0, 1-based", [("supervised.md", ["0"])]),
    ("docs/datasets.md §1-3 and docs/dgsct.md §3.1 to 3.4", [("datasets.md", ["1", "3"]), ("dgsct.md", ["3.1", "3.4"])]),
    ("dgsct.md §3 without the folder", []),
])
def test_citation_parser(text, expected):
    assert [(name, sections) for _, name, sections in citations_in(text)] == expected


def test_heading_parser(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("# Title\n## §0 Conventions\n### §3.2 One unit\n## 4. Old style\n"
                   "```\n## §9 inside a code block\n```\n#### §12\nText § 5\n", encoding="utf-8")
    assert headings(doc) == {"0", "3.2", "4", "12"}


# -- the repository -------------------------------------------------------------------------------
def test_the_reference_docs_are_cited():
    """The scanner finds the citations the code is known to make (so the checks below are not vacuous)."""
    cited: Dict[str, Set[str]] = {}
    for _, _, name, sections in all_citations():
        cited.setdefault(name, set()).update(sections)
    assert {"datasets.md", "dgsct.md", "supervised.md"} <= set(cited)
    assert {"1", "3", "7"} <= cited["datasets.md"] and "0" in cited["supervised.md"]


def test_every_cited_doc_exists():
    missing = [f"{src}:{line}: docs/{name}" for src, line, name, _ in all_citations()
               if not (DOCS / name).is_file()]
    assert not missing, "cited files missing from docs/:\n" + "\n".join(missing)


def test_every_cited_section_has_a_heading():
    cache: Dict[str, Set[str]] = {}
    missing = []
    for src, line, name, sections in all_citations():
        doc = DOCS / name
        if not doc.is_file():
            continue  # reported by test_every_cited_doc_exists
        numbers = cache.setdefault(name, headings(doc))
        missing += [f"{src}:{line}: docs/{name} §{s}" for s in sections if s not in numbers]
    assert not missing, "cited sections with no numbered heading:\n" + "\n".join(missing)


def test_section_citations_name_a_docs_file():
    """``X.md §N`` must say where X.md is (docs/), and nothing may point at notes outside the repository."""
    bad = []
    for path in scanned_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{path.relative_to(ROOT)}:{number}"
            if "shared/reference" in line:
                bad.append(f"{where}: cites shared/reference (outside the repository)")
            for match in ANY_MD_WITH_SECTION.finditer(line):
                if not match.group("path").startswith("docs/"):
                    bad.append(f"{where}: {match.group('path')} § without the docs/ folder")
    assert not bad, "\n".join(bad)
