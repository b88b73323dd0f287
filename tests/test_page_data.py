"""AppTest of folder data sets on the pages: Train, Ablations and Lineage list them with facts and a
preview, the zip upload imports one, runs train on it adapted, the GAP maps page names its classes."""
import io
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from classroom import ALICE, TOKEN, classroom, open_page  # noqa: F401 (a fixture)
from nin_explorer.runs.store import RunStore

pytestmark = pytest.mark.usefixtures("classroom")


def data_root() -> Path:
    return Path(os.environ["NIN_EXPLORER_DATA"])


def pets(root: Path, bad: bool = True, n: int = 10) -> None:
    """cat/ red and dog/ blue 36x36 RGB squares with a dark spot, and one file that is no image."""
    for label, colour in (("cat", (220, 30, 30)), ("dog", (30, 30, 220))):
        directory = root / "pets" / label
        directory.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = Image.new("RGB", (36, 36), colour)
            image.paste((i * 20, i * 20, i * 20), (i, i, i + 8, i + 8))
            image.save(directory / f"{i:02d}.png")
    if bad:
        (root / "pets" / "dog" / "broken.png").write_bytes(b"no png at all")


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (16, 16), 90).save(out, format="PNG")
    return out.getvalue()


def texts(at, *kinds) -> str:
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def test_train_lists_a_folder_with_facts_preview_and_adapts_the_preset():
    pets(data_root())
    at = open_page("pages/train.py", teacher=TOKEN)
    assert not at.exception
    picker = at.selectbox(key="t.dataset")
    assert "shapes" in picker.options and "folder:pets (your images)" in picker.options
    picker.set_value("folder:pets").run()
    assert not at.exception, at.exception
    shown = texts(at, "caption", "warning", "info")
    assert "your images (every fifth image held out), 2 classes, 3x32x32 colour, 16 + 4, 1 bad file" in shown
    assert "1 bad file cannot be used: skip or fix it." in shown
    assert ("`folder:pets` has 3 channel(s) and 2 classes, so tiny is adapted: the first convolution "
            "takes 3 input channel(s) instead of 1; the last block's final convolution gives 2 class "
            "outputs instead of 10.") in shown
    assert "Layout: every fifth image held out. Sizes: 36x36 (20)" in shown
    rows = [image.captions for image in at.get("image")]     # one row of samples per class
    assert [row[0] for row in rows] == ["cat", "dog"] and all(len(row) == 6 for row in rows)
    assert at.radio(key="t.dataset.bad_files").value == "skip"
    at.button(key="t.launch").click().run()
    run = RunStore().list_runs()[0]
    assert run["config"]["dataset"] == "folder:pets" and run["config"]["bad_files"] == "skip"
    assert (run["spec"]["in_channels"], run["spec"]["num_classes"]) == (3, 2)


def test_checking_every_image_names_a_truncated_file_and_offers_the_choice():
    pets(data_root(), bad=False)
    cut = data_root() / "pets" / "cat" / "zz.png"
    Image.effect_noise((64, 64), 60).save(cut)
    cut.write_bytes(cut.read_bytes()[:1500])                 # its header reads, its pixels do not
    at = open_page("pages/train.py", teacher=TOKEN)
    at.selectbox(key="t.dataset").set_value("folder:pets").run()
    assert not [r for r in at.radio if r.key == "t.dataset.bad_files"]   # headers only: all good
    at.button(key="data.check.folder:pets").click().run()
    assert not at.exception, at.exception
    assert "cat/zz.png: That image is damaged or truncated" in texts(at, "caption")
    assert at.radio(key="t.dataset.bad_files").value == "skip"


def test_the_teacher_uploads_a_zip_and_the_picker_chooses_it():
    at = open_page("pages/train.py", teacher=TOKEN)
    classes = {f"photos/{c}/{i}.png": png() for c in ("ant", "bee", "wasp") for i in range(5)}
    at.file_uploader(key="data.zip").upload("photos.zip", zip_bytes(classes), "application/zip").run()
    at.text_input(key="data.zip.name").input("insects").run()
    at.button(key="data.zip.go").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="t.dataset").value == "folder:insects"
    assert "Imported `folder:insects`: chosen here" in texts(at, "success")
    assert "3 classes, 1x28x28 grayscale, 12 + 3" in texts(at, "caption")
    assert sorted(p.name for p in data_root().iterdir() if not p.name.startswith(".")) == ["insects"]


def test_a_hostile_upload_is_refused_in_a_line_and_leaves_nothing():
    at = open_page("pages/train.py", teacher=TOKEN)
    at.file_uploader(key="data.zip").upload("x.zip", zip_bytes({"a/1.png": png(), "b/../../evil.png": png()}),
                                            "application/zip").run()
    at.text_input(key="data.zip.name").input("evil").run()
    at.button(key="data.zip.go").click().run()
    assert not at.exception
    assert "leading out of its folder" in texts(at, "error")
    assert not data_root().exists() or [p.name for p in data_root().iterdir()] == []


def test_a_visitor_on_a_shared_server_cannot_upload():
    at = open_page("pages/train.py", v=ALICE)
    assert not at.exception
    assert not at.file_uploader and "only the teacher adds data sets" in texts(at, "caption")


def test_ablations_and_lineage_list_folder_sets_too():
    pets(data_root(), bad=False)
    at = open_page("pages/ablation.py", teacher=TOKEN)
    at.selectbox(key="a.dataset").set_value("folder:pets").run()
    assert not at.exception, at.exception
    assert "so tiny is adapted" in texts(at, "info") and "runs (cap" in texts(at, "caption")
    at = open_page("pages/lineage.py")
    at.selectbox(key="lin_data").set_value("folder:pets").run()
    assert not at.exception, at.exception
    assert "No finished run of these networks on `folder:pets`" in texts(at, "info")
    assert "Layout: every fifth image held out" in texts(at, "caption")


@pytest.fixture
def folder_run():
    return train_on_pets(15)


def train_on_pets(n: int) -> int:
    """A real 3-epoch `tiny` run on folder:pets (2 classes, RGB, n images each), in this process."""
    from nin_explorer.learn.config import TrainConfig
    from nin_explorer.net.presets import TINY
    from nin_explorer.runs.plan import adapt_spec
    from nin_explorer.runs.worker import execute_run
    pets(data_root(), n=n)
    cfg = TrainConfig.from_dict({"dataset": "folder:pets", "bad_files": "skip", "recipe": "modern",
                                 "epochs": 3, "batch_size": 8, "seed": 0})
    store = RunStore()
    run_id = store.create_run(adapt_spec(TINY, 3, 2).to_dict(), cfg.to_dict(), name="tiny on pets",
                              status="running")
    execute_run(store, run_id)
    assert store.get_run(run_id)["status"] == "completed", store.get_run(run_id)
    return run_id


def test_gap_maps_name_the_folders_classes(folder_run):
    at = open_page("pages/maps.py", teacher=TOKEN, run=str(folder_run))
    assert not at.exception, at.exception
    assert at.selectbox(key="maps_class").options == ["cat", "dog"]
    assert "on `folder:pets`" in texts(at, "caption")
    at.selectbox(key="maps_class").set_value("dog").run()
    assert "true: **dog**" in texts(at, "markdown")
    at.button(key="maps_analyse").click().run()
    assert not at.exception, at.exception
    charts = {c.proto.id.split("-")[-1] for c in at.get("plotly_chart")}
    assert {"class_maps", "class_grid", "confusion", "per_class"} <= charts
    assert "Test accuracy" in [m.label for m in at.metric]
    at.radio(key="maps_mode").set_value("Most confident mistakes").run()
    assert not at.exception, at.exception
    assert "taken for" in str(at.select_slider(key="maps_mistake").format_func(0)) or \
        "No mistakes on the test set." in texts(at, "success")


def test_gap_maps_of_a_class_with_a_single_test_image():
    run_id = train_on_pets(5)                                 # every fifth held out: one each
    at = open_page("pages/maps.py", teacher=TOKEN, run=str(run_id))
    assert not at.exception, at.exception
    at.selectbox(key="maps_class").set_value("dog").run()
    assert not at.exception, at.exception
    assert not [s for s in at.slider if s.key == "maps_example"] and "true: **dog**" in texts(at, "markdown")


def test_your_data_page_lists_usable_and_unusable_folders():
    pets(data_root())
    (data_root() / "loose").mkdir()
    Image.new("L", (8, 8)).save(data_root() / "loose" / "0.png")  # images but no class folders
    at = open_page("pages/data.py", teacher=TOKEN)
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table["data set"].tolist() == ["folder:loose", "folder:pets"]
    assert "one subfolder per class" in table["usable"][0] and table["bad files"].tolist() == [0, 1]
    assert at.selectbox(key="data.pick").options == ["folder:pets"]
    assert "(1 bad file named below)" in texts(at, "caption") and at.file_uploader(key="data.zip")
