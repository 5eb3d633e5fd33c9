"""Where the project's files are: the repository this package belongs to.

The package is installed editable from `lab/` of the repository (`pip install -e lab`), so the
repository is two folders above the package's `src/`. HEAVY_API_ROOT overrides it (a package
installed elsewhere, or a copy of the repository)."""

from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    env = os.environ.get("HEAVY_API_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "Cargo.toml").is_file() and (parent / "k6-tests").is_dir():
            return parent
    return Path.cwd()


ROOT = _find_root()
K6_TESTS = ROOT / "k6-tests"
DEPLOY = ROOT / "deploy"
BENCH_ASSETS = ROOT / "bench"
RESULTS = ROOT / "results"
HEAVY_BIN = ROOT / "target" / "release" / "heavy-api"
