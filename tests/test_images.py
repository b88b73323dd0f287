"""Image decoding on every path (GAP-page uploads, folder data sets): one allow-list decided by
content, 16-bit / palette / alpha / GIF converted right, the pixel cap applied from the header."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image, ImageFile

from nin_explorer.learn.data import DataError, load_dataset
from nin_explorer.learn.images import MAX_IMAGE_PIXELS, ImageError, image_to_tensor
from nin_explorer.look.maps import image_from_upload

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\nshowpage\n%%EOF\n"


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def gradient_16bit(size: int = 64) -> Image.Image:
    """A 16-bit grayscale PNG image whose columns run from 0 to 65,520."""
    row = np.arange(size, dtype=np.uint16) * (65535 // (size - 1) // 16 * 16)
    image = Image.fromarray(np.tile(row, (size, 1)))
    assert image.mode == "I;16"
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height 8-bit gray pixels but holds almost none."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def folder(root: Path, files: dict[str, bytes]) -> str:
    """A folder data set `folder:set` with classes a and b, each holding the named files."""
    for relative, data in files.items():
        path = root / "set" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return "folder:set"


def plain_png(value: int = 100) -> bytes:
    return encoded(Image.new("L", (20, 20), value))


@pytest.fixture
def never_decoded(monkeypatch):
    """Any pixel decoding (ImageFile.load) or any use of PIL's EPS reader fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("reached a decoder that must not run")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", refuse)


# --- conversions, the same on both paths ---

def test_16bit_png_keeps_its_gradient_on_both_paths(tmp_path):
    data = encoded(gradient_16bit())
    expected = torch.tensor([round(int(v) / 257) for v in np.asarray(gradient_16bit())[0]])
    upload = image_from_upload(data, channels=1, size=64)
    assert upload.shape == (1, 64, 64)
    assert (upload[0, 10].int() - expected).abs().max() <= 1       # not all 255
    name = folder(tmp_path, {f"{c}/{i}.png": data for c in "ab" for i in range(2)})
    images = load_dataset(name, root=tmp_path, image_size=64).images
    assert images.shape[1] == 1                                       # counted as grayscale
    assert torch.equal(images[0], upload)


def test_palette_png_with_transparency_is_shown_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)                # 0: black (transparent), 1: red
    image.paste(1, (2, 0, 4, 4))
    data = encoded(image, transparency=0)
    rgb = image_from_upload(data, channels=3, size=4)
    assert rgb[:, 0, 0].tolist() == [255, 255, 255] and rgb[:, 0, 3].tolist() == [255, 0, 0]
    gray = image_from_upload(data, channels=1, size=4)
    assert gray[0, 0, 0] == 255 and gray[0, 0, 3] == 76              # ITU-R 601 luma of red


@pytest.mark.parametrize("mode, clear", [("RGBA", (0, 0, 0, 0)), ("LA", (0, 0))])
def test_alpha_is_composited_on_white(mode, clear):
    image = Image.new(mode, (4, 4), clear)
    image.paste((10, 20, 30, 255) if mode == "RGBA" else (40, 255), (0, 0, 2, 4))
    t = image_from_upload(encoded(image), channels=3, size=4)
    assert t[:, 0, 3].tolist() == [255, 255, 255]
    assert t[:, 0, 0].tolist() == ([10, 20, 30] if mode == "RGBA" else [40, 40, 40])


def test_gif_gives_its_first_frame():
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    data = encoded(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert image_from_upload(data, channels=3, size=8)[:, 4, 4].tolist() == [255, 0, 0]


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "WEBP"])
def test_other_allowed_formats_are_read(fmt):
    t = image_from_upload(encoded(Image.new("RGB", (12, 12), (0, 200, 0)), fmt), 3, 12)
    assert abs(int(t[1, 6, 6]) - 200) <= 3 and int(t[0, 6, 6]) <= 3


def test_uploads_and_folders_crop_the_centre_alike(tmp_path):
    wide = Image.new("L", (40, 20), 0)
    wide.paste(255, (10, 0, 30, 20))                                  # the centre square is white
    data = encoded(wide)
    upload = image_from_upload(data, channels=1, size=16)
    assert upload.min() > 200                     # cropped; squeezed, its edges would be black
    name = folder(tmp_path, {"a/0.png": data, "a/1.png": plain_png(), "b/0.png": plain_png(),
                             "b/1.png": plain_png()})
    assert torch.equal(load_dataset(name, root=tmp_path, image_size=16).images[0], upload)


# --- what is refused, and before what ---

def test_eps_named_png_is_refused_on_both_paths_unread(tmp_path, never_decoded):
    with pytest.raises(ImageError, match="accepted format"):
        image_from_upload(EPS, channels=1, size=28)
    name = folder(tmp_path, {"a/0.png": EPS, "b/0.png": EPS})
    with pytest.raises(DataError, match="Cannot read 0.png: .*accepted format"):
        load_dataset(name, root=tmp_path)


def test_oversized_header_is_refused_before_decoding_on_both_paths(tmp_path, never_decoded):
    side = 4500                                   # 20.25 megapixels, just over the cap
    assert side * side > MAX_IMAGE_PIXELS > 4000 * 4000
    data = png_header_only(side, side)
    with pytest.raises(ImageError, match=f"{side}x{side} pixels, too large"):
        image_from_upload(data, channels=1, size=28)
    name = folder(tmp_path, {"a/0.png": data, "b/0.png": data})
    with pytest.raises(DataError, match="Cannot read 0.png: .*too large"):
        load_dataset(name, root=tmp_path, channels=1)


def test_tiff_is_not_accepted():
    with pytest.raises(ImageError, match="accepted format"):
        image_to_tensor(encoded(Image.new("L", (8, 8)), "TIFF"), 1, 8)
