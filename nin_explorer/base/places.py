"""Where NiN Explorer keeps its files when no folder is given: one cache folder for runs and data."""
from __future__ import annotations

import os
from pathlib import Path


def cache_folder() -> Path:
    """$XDG_CACHE_HOME/nin-explorer, else ~/.cache/nin-explorer: the run store and the data sets'
    default parent ($NIN_EXPLORER_HOME and $NIN_EXPLORER_DATA move each of them elsewhere)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "nin-explorer"
