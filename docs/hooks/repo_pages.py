"""mkdocs hook: the repository's README and each study's results folder join the docs site.

mkdocs builds only docs/, but two sets of pages live elsewhere so that they sit where a reader of
the repository finds them: README.md (the site's home page) and results/<experiment>/README.md
(each study's reading, beside its generated table.md and plots/). This hook adds them to the site
under the same relative paths (README.md as index.md, results/... as results/...), and rewrites
a link written for the repository (`docs/fidelity.md` in README.md, `../results/x/README.md` in a
docs page, `../../docs/statistics.md` in a study's README) into the same file's place in the site.
A link to a repository file that is not in the site is left as written, so the strict build
reports it.
"""
from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

# Markdown links and images: [text](target) and ![alt](target); the target without a title.
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


def _repo_root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def _repo_files(root: Path) -> dict[str, Path]:
    """Site path -> repository file, for every file this hook adds."""
    out = {"index.md": root / "README.md"}
    for folder in sorted((root / "results").glob("*/")):
        for name in ("README.md", "table.md"):
            if (folder / name).is_file():
                out[f"results/{folder.name}/{name}"] = folder / name
        for plot in sorted((folder / "plots").glob("*.png")):
            out[f"results/{folder.name}/plots/{plot.name}"] = plot
    return out


def on_files(files: Files, config) -> Files:
    root = _repo_root(config)
    for src_uri, path in _repo_files(root).items():
        if files.get_file_from_path(src_uri) is None:
            # A generated table is a page reached from its study's README, not a nav entry.
            level = InclusionLevel.NOT_IN_NAV if src_uri.endswith("/table.md") else InclusionLevel.UNDEFINED
            files.append(File.generated(config, src_uri, abs_src_path=str(path), inclusion=level))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Links written between repository paths, rewritten between the same files' site paths."""
    site_of = {os.path.realpath(f.abs_src_path): f.src_uri for f in files if f.abs_src_path}
    here = os.path.dirname(os.path.realpath(page.file.abs_src_path))
    page_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("#", "/", "mailto:")):
            return match.group(0)
        path, hash_, anchor = target.partition("#")
        site = site_of.get(os.path.realpath(os.path.join(here, path))) if path else None
        if site is None:
            return match.group(0)
        rel = posixpath.relpath(site, page_dir or ".")
        return f"{match.group(1)}{rel}{hash_}{anchor}{match.group(3)}"

    return LINK.sub(rewrite, markdown)
