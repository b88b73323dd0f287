"""GAP maps, CAMs, the logit identity, test-set analysis, and refusing bad uploads."""
import io
import threading

import pytest
import torch
from PIL import Image

from nin_explorer.net.build import build_model
from nin_explorer.look.maps import (CheckpointError, ImageError, analyse_test_set, channel_order,
                                    class_maps, identity_gap, image_from_upload,
                                    most_confident_mistakes, open_checkpoint)
from nin_explorer.net.presets import TINY


def checkpoint_bytes(spec, seed=0, **extra) -> bytes:
    torch.manual_seed(seed)
    net = build_model(spec)
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "spec": spec.to_dict(), "config": {}, "epoch": 1,
                "classes": [f"c{i}" for i in range(spec.num_classes)], **extra}, buf)
    return buf.getvalue()


def images(n=6, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("head", ["gap", "gap-linear"])
def test_mean_of_map_is_the_logit(head):
    spec = TINY if head == "gap" else TINY.replace(head="gap-linear").replace_block(3, out_channels=24)
    ckpt = open_checkpoint(checkpoint_bytes(spec))
    r = class_maps(ckpt, images())
    assert r.class_maps.shape == (6, 10, 7, 7)
    assert r.kind == ("gap" if head == "gap" else "cam")
    assert identity_gap(r) < 1e-5
    torch.testing.assert_close(r.probs.sum(1), torch.ones(6))


def test_fc_head_gets_grad_cam_without_identity():
    spec = TINY.replace(head="fc", fc_hidden=(32,))
    r = class_maps(open_checkpoint(checkpoint_bytes(spec)), images())
    assert r.kind == "grad-cam" and r.class_maps.shape == (6, 10, 7, 7)
    assert (r.class_maps >= 0).all()


def test_block_outputs_and_channel_order():
    r = class_maps(open_checkpoint(checkpoint_bytes(TINY)), images(2))
    assert r.block_outputs["block1"].shape == (2, 16, 14, 14)
    order = channel_order(r.block_outputs["block2"][0])
    means = r.block_outputs["block2"][0].mean((1, 2))
    assert sorted(order) == list(range(32)) and means[order[0]] == means.max()


def test_visitors_sharing_one_model_get_their_own_maps():
    # The page caches one loaded model for every visitor: B's pass runs while A's is paused
    # just before the head, and A must still get A's block outputs (not B's).
    ckpt = open_checkpoint(checkpoint_bytes(TINY))
    a_paused, b_done, results = threading.Event(), threading.Event(), {}

    def pause(module, inputs):
        if threading.current_thread().name == "A":
            a_paused.set()
            assert b_done.wait(10)
    handle = ckpt.model.head.register_forward_pre_hook(pause)
    try:
        a = threading.Thread(target=lambda: results.update(A=class_maps(ckpt, images(2))), name="A")
        a.start()
        assert a_paused.wait(10)
        b = class_maps(ckpt, images(5, seed=1))
        b_done.set()
        a.join(10)
    finally:
        handle.remove()
    alone = class_maps(ckpt, images(2))
    assert b.block_outputs["block1"].shape[0] == 5
    for name, out in alone.block_outputs.items():
        torch.testing.assert_close(results["A"].block_outputs[name], out)
    torch.testing.assert_close(results["A"].class_maps, alone.class_maps)


def test_test_set_analysis():
    ckpt = open_checkpoint(checkpoint_bytes(TINY))
    x, y = images(50), torch.arange(50) % 10
    a = analyse_test_set(ckpt, x, y, batch_size=16)
    assert a.mean_maps.shape == (10, 10, 7, 7)
    assert a.confusion.sum() == 50 and a.confusion.sum(1).tolist() == [5] * 10
    assert a.accuracy == pytest.approx(sum(a.confusion.diag().tolist()) / 50)
    # class 0's mean maps are the mean over the images of class 0
    first = class_maps(ckpt, x[y == 0]).class_maps.mean(0)
    torch.testing.assert_close(a.mean_maps[0], first, atol=1e-5, rtol=1e-4)
    mistakes = most_confident_mistakes(a, 5)
    assert all(a.predictions[i] != a.labels[i] for i in mistakes)
    assert list(a.confidence[mistakes]) == sorted(a.confidence[mistakes].tolist(), reverse=True)


def test_checkpoint_refusals(tmp_path):
    good = checkpoint_bytes(TINY)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        open_checkpoint(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="empty, truncated, or another kind of file"):
        open_checkpoint(b"")
    with pytest.raises(CheckpointError, match="missing"):
        open_checkpoint(tmp_path / "nope.pt")
    other = checkpoint_bytes(TINY.replace_block(0, out_channels=8))
    state = torch.load(io.BytesIO(other), weights_only=True)
    state["spec"] = TINY.to_dict()  # weights of another architecture under this spec
    buf = io.BytesIO()
    torch.save(state, buf)
    with pytest.raises(CheckpointError, match="do not fit"):
        open_checkpoint(buf.getvalue())
    buf = io.BytesIO()
    torch.save({"weights": torch.zeros(3)}, buf)
    with pytest.raises(CheckpointError, match="not a NiN Explorer checkpoint"):
        open_checkpoint(buf.getvalue())


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_with_pickled_code_is_refused():
    buf = io.BytesIO()
    torch.save({"model": {}, "spec": {}, "evil": Evil()}, buf)
    with pytest.raises(CheckpointError, match="refused unread"):
        open_checkpoint(buf.getvalue())


def png(size=(40, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color=128 if mode == "L" else (200, 100, 50)).save(buf, "PNG")
    return buf.getvalue()


def test_upload_converted_to_run_format():
    t = image_from_upload(png(), channels=1, size=28)
    assert t.shape == (1, 28, 28) and t.dtype == torch.uint8
    t = image_from_upload(png(mode="L"), channels=3, size=32)
    assert t.shape == (3, 32, 32) and int(t[0, 0, 0]) == 128


@pytest.mark.parametrize("data, message", [
    (b"this is not an image at all", "not an image"),
    (png()[:60], "damaged or truncated|not an image"),
    (b"x" * (17 * 2**20), "up to 16 MB"),
])
def test_bad_uploads_refused(data, message):
    with pytest.raises(ImageError, match=message):
        image_from_upload(data, 1, 28)


def test_decompression_bomb_refused_before_decoding():
    # A PNG whose header declares 20000 x 20000 pixels: refused from the header alone.
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")
    with pytest.raises(ImageError, match="too large|decompression bomb"):
        image_from_upload(buf.getvalue(), 1, 28)
