"""Which data sets exist? One record per data set with every fact about it; no torch needed.

Adding a data set is one `DatasetInfo` in `CATALOGUE`: a torchvision set names its class in
`torchvision.datasets` and the files a finished download leaves; the pickers' text is generated
from the fields, so a size is written once.
"""
from __future__ import annotations

from dataclasses import dataclass

FOLDER_PREFIX = "folder:"  # folder:<path under the data root> names a user's ImageFolder layout
# what a folder's unreadable, truncated, oversized or wrongly formatted files do to the set
BAD_FILES = {"refuse": "refuse the set, naming its bad files", "skip": "leave bad files out, counting them"}


def bad_count(n: int) -> str:
    """'1 bad file', '2 bad files'."""
    return f"{n:,} bad file{'' if n == 1 else 's'}"


SOURCES = ("torchvision", "shapes", "folder")  # downloaded, drawn by shapes.py, a user's images


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set is, known without loading or generating it."""

    name: str
    title: str
    about: str  # what the pictures show, without counts or sizes (those come from the fields)
    channels: int
    image_size: int
    classes: tuple[str, ...]
    n_train: int
    n_test: int
    source: str = "folder"  # one of SOURCES: which module loads it
    torchvision_class: str = ""  # source "torchvision": the class in torchvision.datasets
    download_mb: int = 0  # 0: nothing to download
    downloaded_files: tuple[str, ...] = ()  # under the data root, present once downloaded
    licence: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"{self.name}: source must be one of {SOURCES}, not {self.source!r}")
        if (self.source == "torchvision") != bool(self.torchvision_class and self.downloaded_files):
            raise ValueError(f"{self.name}: a torchvision set needs torchvision_class and downloaded_files")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def description(self) -> str:
        """One line for pickers, e.g. 'MNIST: handwritten digits, 10 classes, 1x28x28 grayscale,
        60,000 + 10,000 (download 12 MB)'."""
        kind = "grayscale" if self.channels == 1 else "colour"
        size = f"{self.channels}x{self.image_size}x{self.image_size}"
        text = (f"{self.title}: {self.about}, {self.n_classes} classes, {size} {kind}, "
                f"{self.n_train:,} + {self.n_test:,}")
        if self.download_mb:
            return f"{text} (download {self.download_mb} MB)"
        return f"{text} (offline, generated in seconds)" if self.source == "shapes" else text


# shapes.py draws one signed distance function per class name
SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star", "diamond", "heart", "crescent", "arrow", "hourglass")


def _idx_files(folder: str) -> tuple[str, ...]:
    # what torchvision's MNIST family leaves after a download (it checks these before reading)
    return tuple(f"{folder}/raw/{split}-images-idx3-ubyte" for split in ("train", "t10k"))


# name -> record
CATALOGUE = {info.name: info for info in (
    DatasetInfo("fashion-mnist", "Fashion-MNIST", "kinds of clothing", 1, 28,
                ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"), 60_000, 10_000,
                source="torchvision", torchvision_class="FashionMNIST", download_mb=30,
                downloaded_files=_idx_files("FashionMNIST"), licence="MIT (Zalando Research)"),
    DatasetInfo("mnist", "MNIST", "handwritten digits", 1, 28, tuple(str(digit) for digit in range(10)),
                60_000, 10_000,
                source="torchvision", torchvision_class="MNIST", download_mb=12,
                downloaded_files=_idx_files("MNIST"), licence="CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)"),
    DatasetInfo("kmnist", "Kuzushiji-MNIST", "cursive Japanese characters", 1, 28,
                ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), 60_000, 10_000,
                source="torchvision", torchvision_class="KMNIST", download_mb=20,
                downloaded_files=_idx_files("KMNIST"), licence="CC BY-SA 4.0 (ROIS-DS CODH)"),
    DatasetInfo("cifar10", "CIFAR-10", "small photos", 3, 32,
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
                50_000, 10_000,
                source="torchvision", torchvision_class="CIFAR10", download_mb=170,
                downloaded_files=("cifar-10-batches-py/test_batch",),
                licence="none stated by its authors; cite Krizhevsky (2009)"),
    DatasetInfo("shapes", "Shapes", "drawn shapes with clutter and noise", 1, 28, SHAPE_CLASSES,
                60_000, 10_000, source="shapes", licence="drawn by this project's code"),
    DatasetInfo("shapes-hard", "Shapes (hard)", "smaller shapes, more clutter and noise", 1, 28, SHAPE_CLASSES,
                60_000, 10_000, source="shapes", licence="drawn by this project's code"),
)}

# name -> one line, for pickers
DATASETS = {name: info.description for name, info in CATALOGUE.items()}
