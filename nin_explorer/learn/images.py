"""Which image files are read, and how one becomes a uint8 (C, size, size) tensor.

Every decode path (GAP-page uploads, folder data sets) goes through `open_image` and
`image_to_tensor`: the format is decided from the file's content against one allow-list (an
EPS file named .png is refused, never handed to Ghostscript), the pixel count is checked from
the header before any pixel is decoded, and every mode (16-bit, palette, alpha) is converted
the same way.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

# PIL format names, decided from the content; a GIF or WebP gives its first frame
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")  # what a folder scan picks up
MAX_IMAGE_PIXELS = 4096 * 4096  # refused from the header, before decoding (decompression bombs)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_SIXTEEN_BIT = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_BACKGROUND = 255  # transparent pixels are shown on white, as an image viewer shows them

if TYPE_CHECKING:  # torch is imported when a tensor is made: folder_read's workers need only PIL
    import torch


class ImageError(ValueError):
    """A file that is not a usable image; the message says why."""


def open_image(source: str | os.PathLike | bytes) -> Image.Image:
    """The image in a file or bytes, header read only: ImageError unless its content is one of
    ALLOWED_FORMATS and it has at most MAX_IMAGE_PIXELS pixels. Use it as a context manager."""
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageError("That file is not an image in an accepted format (PNG, JPEG, BMP, GIF "
                         "or WebP); its content decides, not its name.") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError("That image declares too many pixels (a decompression bomb?); "
                         "refused.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"That image is damaged or truncated ({str(e)[:60]}).") from None
    if image.width * image.height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageError(f"That image is {image.width}x{image.height} pixels, too large to decode "
                         f"safely; use one of at most {MAX_IMAGE_PIXELS:,} pixels.")
    return image


def image_to_tensor(source: str | os.PathLike | bytes, channels: int, size: int) -> torch.Tensor:
    """A file or bytes as uint8 (channels, size, size): converted to L or RGB, the centre square
    cropped (no stretching) and resized bilinearly. ImageError when it cannot be used."""
    import torch
    pixels = torch.frombuffer(bytearray(image_bytes(source, channels, size)), dtype=torch.uint8)
    return pixels.view(size, size, channels).permute(2, 0, 1).contiguous()  # (H, W, C) -> (C, H, W)


def image_bytes(source: str | os.PathLike | bytes, channels: int, size: int) -> bytes:
    """`image_to_tensor`'s pixels as size*size*channels bytes in (H, W, C) order, without torch."""
    with open_image(source) as image:
        try:
            image.load()  # the first frame of a GIF or WebP
            square = ImageOps.fit(_to_mode(image, "L" if channels == 1 else "RGB"), (size, size),
                                  Image.Resampling.BILINEAR)
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageError(f"That image is damaged or truncated ({str(e)[:60]}).") from None
    return square.tobytes()


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image` as 8-bit L or RGB: 16-bit scaled (PIL's own convert clips it to white),
    palette and transparency resolved, alpha composited on white."""
    if image.mode in _SIXTEEN_BIT:  # 0..65535 -> 0..255
        image = image.convert("I").point(lambda v: v * (1 / 257) + 0.5).convert("L")
    elif image.mode in ("P", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("LA", "La", "RGBA", "RGBa"):
        image = image.convert("RGBA" if image.mode.startswith("R") else "LA")
        background = Image.new(image.mode[:-1], image.size, _BACKGROUND if image.mode == "LA"
                               else (_BACKGROUND,) * 3)
        background.paste(image, mask=image.getchannel("A"))
        image = background
    return image if image.mode == mode else image.convert(mode)
