"""One cache folder: the run store and the data sets default to the same parent."""
from nin_explorer.learn.data import default_root
from nin_explorer.runs.store import default_home


def test_runs_and_data_resolve_the_cache_folder_the_same_way(tmp_path, monkeypatch):
    monkeypatch.delenv("NIN_EXPLORER_HOME")
    monkeypatch.delenv("NIN_EXPLORER_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_home() == tmp_path / "cache" / "nin-explorer"
    assert default_root() == default_home() / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert default_home() == tmp_path / "me" / ".cache" / "nin-explorer"
    assert default_root() == default_home() / "data"
