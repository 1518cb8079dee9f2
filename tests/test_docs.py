"""The README and docs/ stay true to the code: every setting listed, every link resolving."""

from __future__ import annotations

import re
from pathlib import Path

from kennel.core.settings import Settings

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readmes_table() -> None:
    table = README.split("### Settings", 1)[1].split("\n### ", 1)[0]
    missing = [
        f"KENNEL_{name.upper()}"
        for name in Settings.model_fields
        if f"`KENNEL_{name.upper()}`" not in table
    ]
    assert not missing, f"README's settings table lacks {missing}"
    listed = set(re.findall(r"`(KENNEL_[A-Z_]+)`", table))
    unknown = {v for v in listed if v.removeprefix("KENNEL_").lower() not in Settings.model_fields}
    assert not unknown, f"README lists settings that do not exist: {unknown}"


def test_links_between_the_documents_resolve() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
        assert "../shared" not in doc.read_text(), f"{doc.name} points outside the repository"
