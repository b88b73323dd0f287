"""Reading runs back for comparison: which settings differ, flattened for a table."""
from __future__ import annotations


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for i, v in enumerate(value, start=1):
            _flatten(f"{prefix}[{i}]", v, out)
    else:
        out[prefix] = value


def settings(run: dict) -> dict:
    """A run's spec and config as flat 'spec.blocks[2].kernel'-style keys; a config stored
    before a setting existed gets that setting's default, so it does not look different."""
    from .config import ConfigError, TrainConfig

    try:
        config = TrainConfig.from_dict(run["config"]).to_dict()
    except (ConfigError, TypeError):
        config = run["config"]
    out: dict = {}
    _flatten("spec", run["spec"], out)
    _flatten("config", config, out)
    return out


def differing_settings(runs: list[dict]) -> list[dict]:
    """Rows (setting, value per run) for the settings that are not the same in every run."""
    flat = [settings(r) for r in runs]
    keys = sorted(set().union(*flat))
    rows = []
    for k in keys:
        values = [f.get(k) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append({"setting": k, **{f"#{r['id']}": str(v) for r, v in zip(runs, values)}})
    return rows
