"""Where a run's code came from: the git commit it is recorded with (a run's recipe)."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]   # nin_explorer/runs/provenance.py -> the repo


def git_commit(repo: Path | None = None) -> str | None:
    """The checked-out commit of the app's repository, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or REPO_ROOT,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
