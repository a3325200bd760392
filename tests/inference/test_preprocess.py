"""predict's image reader: size bombs refused from the header, every Pillow mode mapped
to 0..255 grey without clipping, EXIF orientation applied. Images are made here."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bareprop.errors import DataError
from bareprop.preprocess import _wide_to_grey, load_grey, to_mnist


def bar_image(h=60, w=40):
    """Dark vertical bar on light paper, 0..1 float (1 = paper): a clear '1'."""
    a = np.ones((h, w))
    a[h // 6:h - h // 6, w // 2 - 3:w // 2 + 3] = 0.1
    return a


def png_with_size(path, width, height):
    """A tiny PNG whose header declares width x height (the pixel data is 1x1)."""
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(raw[ihdr:ihdr + 17])) & 0xFFFFFFFF
    raw[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("side", [8_000, 60_000])  # over our bound / over Pillow's own bomb limit
def test_huge_images_are_refused_before_decoding(tmp_path, side):
    p = tmp_path / "bomb.png"
    png_with_size(p, side, side)
    with pytest.raises(DataError, match="pixels"):
        load_grey(p)


@pytest.mark.parametrize("mode,full", [("I;16", 65535), ("I", 65535), ("F", 1.0)])
def test_wide_modes_are_scaled_not_clipped(tmp_path, mode, full):
    a = bar_image()
    if mode == "I;16":
        p = tmp_path / "x.png"             # a real 16-bit greyscale PNG
        Image.fromarray((a * full).astype(np.uint16)).save(p)
        g = load_grey(p)
    else:
        # only PNG and JPEG are read, and Pillow no longer decodes either to I or F (an
        # older one gives I for a 16-bit PNG): the pixels as such a decoder hands them over
        g = _wide_to_grey((a * full).astype(np.int32 if mode == "I" else np.float32), mode)
    assert np.allclose(g, a * 255, atol=1.0)
    assert to_mnist(g).max() == 255       # not blank: the bar survived


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray((bar_image(60, 40) * 255).astype(np.uint8), "L").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6                          # "rotate 90 CW to view": stored sideways
    p = tmp_path / "phone.jpg"
    im.save(p, exif=exif.tobytes())
    assert load_grey(p).shape == (40, 60)


def image_bytes(fmt: str) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray((bar_image() * 255).astype(np.uint8), "L").save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,name", [("GIF", "a GIF image"), ("BMP", "a BMP image"),
                                      ("TIFF", "a TIFF image"), ("WEBP", "a WebP image"),
                                      ("ICO", "an ICO image"), ("PPM", "not a PNG or JPEG")])
def test_only_png_and_jpeg_are_decoded(tmp_path, fmt, name):
    """Pillow decodes far more than the docs promise; only PNG and JPEG get that far, from a
    file as from an upload, and the line says what the file is and what to do."""
    import io

    p = tmp_path / "digit.png"                     # the name does not matter, the bytes do
    p.write_bytes(image_bytes(fmt))
    upload = io.BytesIO(p.read_bytes())
    upload.name = "the upload"
    for source, who in ((p, str(p)), (upload, "the upload")):
        with pytest.raises(DataError) as err:
            load_grey(source)
        assert str(err.value).startswith(f"{who}: {name}") and "PNG or JPEG" in str(err.value)
        assert "\n" not in str(err.value)
    for fmt in ("PNG", "JPEG"):                    # what the docs say still reads
        p.write_bytes(image_bytes(fmt))
        assert load_grey(p).shape == (60, 40)


def test_eps_never_reaches_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a) or 1 / 0)
    p = tmp_path / "digit.eps"
    p.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n"
                  b"newpath 14 4 moveto 14 24 lineto stroke\nshowpage\n%%EOF\n")
    with pytest.raises(DataError, match="an EPS image, not PNG or JPEG"):
        load_grey(p)
    assert calls == []


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_become_white_paper_and_opaque_ones_stay(tmp_path, mode):
    """Ink drawn on a transparent sheet (a canvas never filled) reads as ink on white;
    an all-opaque image with an alpha channel reads as the same image without one."""
    ink = (bar_image() * 255).astype(np.uint8)                       # (60, 40), paper 255
    rgba = np.zeros(ink.shape + (4,), np.uint8)
    rgba[..., 3] = np.where(ink < 128, 255, 0)                        # only the ink is there
    see_through = Image.fromarray(rgba, "RGBA")
    opaque = Image.fromarray(np.dstack([ink, ink, ink, np.full_like(ink, 255)]), "RGBA")
    for im, want in ((see_through, np.where(ink < 128, 0.0, 255.0)), (opaque, ink)):
        p = tmp_path / "digit.png"
        (im if mode == "RGBA" else im.convert(mode)).save(p)
        got = load_grey(p)
        if mode == "P" and im is see_through:      # a palette's transparency: one index
            assert got.max() == 255 and got.min() == 0
            continue
        np.testing.assert_allclose(got, want, atol=1)
