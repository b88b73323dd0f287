"""AppTest of the GAP maps page on a checkpoint trained in the test session."""
import io

from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT


def maps_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/maps.py")
    return at.run()


def test_no_runs_says_what_to_do():
    at = maps_page()
    assert not at.exception
    assert "No run has a checkpoint yet" in at.info[0].value


def test_class_maps_identity_and_test_set(use_trained_home):
    at = maps_page()
    assert not at.exception, at.exception
    charts = {c.proto.id for c in at.get("plotly_chart")}
    assert len(charts) >= 3  # input, class maps, logits
    identity = next(m.value for m in at.markdown if "Mean of map c = logit c" in m.value)
    assert "largest difference is" in identity
    gap = float(identity.split("largest difference is ")[1].split(" ")[0])
    assert gap < 1e-5
    # the whole test set
    at.button(key="maps_analyse").click().run()
    assert not at.exception
    acc = next(m for m in at.metric if m.label == "Test accuracy")
    assert float(acc.value.rstrip("%")) > 30
    # now the most confident mistakes can be browsed
    at.radio(key="maps_mode").set_value("Most confident mistakes").run()
    assert not at.exception


def test_upload_image_and_bad_upload(use_trained_home):
    at = maps_page()
    at.radio(key="maps_mode").set_value("Upload an image").run()
    buf = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buf, "PNG")
    at.file_uploader(key="maps_image").upload("white.png", buf.getvalue(), "image/png").run()
    assert not at.exception and not at.error
    assert any("Mean of map c = logit c" in m.value for m in at.markdown)
    at.file_uploader(key="maps_image").upload("bad.png", b"not an image", "image/png").run()
    assert not at.exception
    assert "not an image" in at.error[0].value


def test_bad_checkpoint_upload_is_refused(use_trained_home):
    at = maps_page()
    at.radio(key="maps_source").set_value("Upload a checkpoint").run()
    at.file_uploader(key="maps_ckpt").upload("x.pt", b"garbage", "application/octet-stream").run()
    assert not at.exception
    assert "not a complete PyTorch checkpoint" in at.error[0].value


def upload_checkpoint(at: AppTest, data: bytes) -> AppTest:
    at.radio(key="maps_source").set_value("Upload a checkpoint").run()
    return at.file_uploader(key="maps_ckpt").upload("up.pt", data, "application/octet-stream").run()


def test_uploaded_checkpoint_is_checked_once_per_file(use_trained_home, monkeypatch):
    from test_checkpoint import checkpoint_bytes

    from nin_explorer.look import maps
    calls = []
    real = maps.load_upload
    monkeypatch.setattr(maps, "load_upload", lambda data: calls.append(len(data)) or real(data))
    at = upload_checkpoint(maps_page(), checkpoint_bytes())
    assert not at.exception and not at.error and not at.warning
    assert any("Mean of map c = logit c" in m.value for m in at.markdown)  # shapes is here
    at.radio(key="maps_mode").set_value("Random").run()
    at.button(key="maps_random").click().run()
    assert not at.exception and len(calls) == 1     # reruns reuse the checked checkpoint
    # a refused file is remembered too, and says why in one line
    upload_checkpoint(at, checkpoint_bytes(epoch="1")).run()
    assert len(calls) == 2 and "epoch must be a whole number" in at.error[0].value


def test_hostile_uploads_get_one_line(use_trained_home):
    from test_checkpoint import checkpoint_bytes, nested_shared

    at = upload_checkpoint(maps_page(), checkpoint_bytes(classes=nested_shared(25)))
    assert not at.exception and "nested too deep" in at.error[0].value
    for name, message in [("folder:a\x00b", "trained on a folder of images"),
                          ("x" * 299, "names a data set this server does not know"),
                          ("mnist", "not downloaded on this server")]:
        at = upload_checkpoint(maps_page(), checkpoint_bytes(config={"dataset": name}))
        assert not at.exception, (name, at.exception)
        assert message in at.warning[0].value and "own images can still be used" in at.warning[0].value
        assert at.radio(key="maps_mode").options == ["Upload an image"]
    at = upload_checkpoint(maps_page(), checkpoint_bytes(config={"dataset": "x" * 5000}))
    assert not at.exception and "training config is not valid" in at.error[0].value
