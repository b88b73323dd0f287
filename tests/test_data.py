"""The front door: names, the data root, options that do not apply."""
import pytest

from nin_explorer.learn.catalogue import DATASETS
from nin_explorer.learn.data import DataError, dataset_info, default_root, load_dataset


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
    monkeypatch.delenv("NIN_EXPLORER_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache" / "nin-explorer" / "data"


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(DataError) as error:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(error.value)
    with pytest.raises(DataError, match="choose one of"):
        dataset_info("imagenet")


def test_folder_options_are_refused_for_builtin_sets():
    with pytest.raises(DataError, match="folder: data sets only"):
        load_dataset("shapes", channels=3)
