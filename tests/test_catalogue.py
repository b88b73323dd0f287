"""The catalogue: every data set's facts in one record, known without torch."""
import subprocess
import sys
from dataclasses import replace

import pytest

from conftest import ROOT
from nin_explorer.learn.catalogue import CATALOGUE, DATASETS
from nin_explorer.learn.data import dataset_info


def test_info_without_loading():
    assert set(DATASETS) == {"fashion-mnist", "mnist", "kmnist", "cifar10", "shapes", "shapes-hard"}
    for name in DATASETS:
        info = dataset_info(name)
        assert info.n_classes == 10 and info.name == name
        assert str(info.image_size) in DATASETS[name] and str(info.channels) in DATASETS[name]
    assert (dataset_info("cifar10").channels, dataset_info("cifar10").image_size) == (3, 32)
    assert (dataset_info("shapes-hard").channels, dataset_info("shapes-hard").image_size) == (1, 28)
    assert dataset_info("shapes").classes[:4] == ("circle", "square", "triangle", "cross")


def test_class_names_match_torchvision():
    import torchvision.datasets as tvd

    assert list(dataset_info("fashion-mnist").classes) == tvd.FashionMNIST.classes
    assert list(dataset_info("kmnist").classes) == tvd.KMNIST.classes


def test_descriptions_are_generated_from_the_fields():
    mnist = dataset_info("mnist")
    assert mnist.description == DATASETS["mnist"]
    assert mnist.description == ("MNIST: handwritten digits, 10 classes, 1x28x28 grayscale, 60,000 + 10,000 "
                                 "(download 12 MB)")
    changed = replace(mnist, n_train=1234, image_size=64, channels=3, download_mb=0)
    assert changed.description == "MNIST: handwritten digits, 10 classes, 3x64x64 colour, 1,234 + 10,000"
    assert "offline" in DATASETS["shapes"] and "download" not in DATASETS["shapes"]


def test_every_record_says_where_it_comes_from_and_its_licence():
    for info in CATALOGUE.values():
        assert info.source in ("torchvision", "shapes") and info.licence
        assert bool(info.download_mb) == (info.source == "torchvision")
    with pytest.raises(ValueError, match="torchvision_class and downloaded_files"):
        replace(CATALOGUE["mnist"], downloaded_files=())
    with pytest.raises(ValueError, match="source must be one of"):
        replace(CATALOGUE["shapes"], source="web")


def test_the_catalogue_and_dataset_info_need_no_torch():
    code = ("import sys\n"
            "from nin_explorer.learn.catalogue import DATASETS\n"
            "from nin_explorer.learn.data import dataset_info, is_local\n"
            "assert dataset_info('cifar10').channels == 3 and is_local('shapes') and len(DATASETS) == 6\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'PIL')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
