"""Functions the e2e test runs on Dask workers (the gateway's clusters have the tests directory
on their PYTHONPATH, as a notebook's workers have the notebook's image)."""

from __future__ import annotations

import os
from pathlib import Path


def branch_sum(url: str, tree: str = "Events", branch: str = "pt") -> float:
    """The sum of a branch of a ROOT file, read by uproot from `url` (root:// through the cache)."""
    import uproot

    with uproot.open(url) as events:
        return float(events[tree][branch].array(library="np").sum())


def token_file() -> tuple[str, str, int]:
    """Where this worker's token file is, what it holds and its mode."""
    path = os.environ["BEARER_TOKEN_FILE"]
    return path, Path(path).read_text().strip(), os.stat(path).st_mode & 0o777


def read_columns(url: str, branches: tuple[str, ...], tree: str = "Events") -> int:
    """Read `branches` of a ROOT file as arrays (a columnar read); the bytes they take in memory."""
    import uproot

    with uproot.open(url) as events:
        arrays = events[tree].arrays(list(branches), library="np")
    return sum(array.nbytes for array in arrays.values())
