"""Whether a hub dataset can be read here, asked once per dataset before any run: cached, or the hub answers."""
from __future__ import annotations

import functools
import glob
import os


def _cache_folder(path: str, name: str | None) -> tuple[str, str]:
    """(the `datasets` cache root, the glob of a prepared copy of `path` / `name` under it). The
    layout is the one `datasets` reads offline (datasets.load.CachedDatasetModuleFactory):
    <cache>/<namespace>___<dataset, snake case>/<config>/<version>/<hash>/."""
    from datasets import config
    from datasets.naming import camelcase_to_snakecase

    parts = path.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = os.path.expanduser(str(config.HF_DATASETS_CACHE))
    return root, os.path.join(root, "___".join(parts), name or "*", "*", "*")


def offline() -> bool:
    """HF_HUB_OFFLINE or HF_DATASETS_OFFLINE set (as `datasets` reads them)."""
    from datasets import config

    return bool(config.HF_HUB_OFFLINE)


@functools.lru_cache(maxsize=None)
def dataset_problem(path: str, name: str | None) -> str | None:
    """Why hub dataset `path` (configuration `name`) cannot be read here, or None: a prepared copy
    in the local `datasets` cache is enough; otherwise the hub must answer (one request, no
    retries), unless offline mode forbids asking. Cached per process: one probe per dataset."""
    root, pattern = _cache_folder(path, name)
    if any(os.path.isdir(p) for p in glob.glob(pattern)):
        return None
    where = f"hub dataset {path}/{name}" if name else f"hub dataset {path}"
    if offline():
        return (f"{where} is not in the local datasets cache {root}, and offline mode is on "
                "(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), so it cannot be fetched")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().dataset_info(path, timeout=10)
    except RepositoryNotFoundError:
        return f"{where} does not exist on the hub (or needs a login: `hf auth login`)"
    except Exception as e:  # noqa: BLE001 - no network, DNS, proxy, hub down: all mean "cannot fetch"
        return f"{where} is not in the local datasets cache {root}, and the hub cannot be reached ({type(e).__name__}: {e})"
    return None
