"""Image checks from the header, before any pixel is decoded, and per-row isolation in preprocessing.

Pure and fast: Pillow, numpy and a tiny word-level tokenizer; no model artifact, no server. The same
traps through a real Triton are in tests/triton_repo/test_fusion_serving.py.
"""
from __future__ import annotations

import bw_paths
import time
import warnings

import numpy as np
import pytest

from fusion_model import serving
from fusion_model.preprocess import (
    DEFAULT_IMAGE_FORMATS, ImageDecodeError, ImageLimits, ImagePreprocessConfig, Preprocessor, TextTokenizer,
    check_image_header, decode_image, preprocess_image, sniff_format,
)
from contracts.settings import Settings
from bw_images import animated_gif, encoded, png, png_header_only

CFG = ImagePreprocessConfig()


def _ms(fn, *a):
    t0 = time.perf_counter()
    out = fn(*a)
    return out, (time.perf_counter() - t0) * 1000


# --------------------------------------------------------------------------- limits and settings
def test_settings_mirror_the_one_set_of_defaults():
    s = Settings()
    assert ImageLimits.from_settings(s) == ImageLimits()
    assert (s.max_image_pixels, s.max_image_side, s.max_image_aspect) == (4_194_304, 8192, 20.0)
    assert ImageLimits().formats == DEFAULT_IMAGE_FORMATS == ("JPEG", "PNG", "GIF", "WEBP", "BMP")


def test_limits_from_environment_and_settings(monkeypatch):
    monkeypatch.setenv("BABELWATCH_MAX_IMAGE_PIXELS", "1_000_000")
    monkeypatch.setenv("BABELWATCH_MAX_IMAGE_SIDE", "4000")
    monkeypatch.setenv("BABELWATCH_MAX_IMAGE_ASPECT", "5")
    monkeypatch.setenv("BABELWATCH_IMAGE_FORMATS", " jpg, png ,")
    want = ImageLimits(max_pixels=1_000_000, max_side=4000, max_aspect=5.0, formats=("JPEG", "PNG"))
    assert ImageLimits.from_settings(Settings()) == want
    import os

    assert ImageLimits.from_env(os.environ) == want
    assert ImageLimits.from_env({}) == ImageLimits()


@pytest.mark.parametrize("kw", [dict(max_pixels=0), dict(max_side=-1), dict(max_aspect=0.5),
                                dict(max_aspect=float("nan"))])
def test_nonsense_limits_are_refused(kw):
    with pytest.raises(ValueError):
        ImageLimits(**kw)


def test_the_artifacts_pixel_limit_applies_when_stricter():
    assert ImageLimits().capped(50_000_000).max_pixels == 4_194_304  # the artifact's 50 Mpx: ours win
    assert ImageLimits().capped(1000).max_pixels == 1000
    assert ImageLimits().capped(None) == ImageLimits()


def test_served_models_read_env_then_config_parameters_then_the_artifact_cap():
    args = {"model_config": '{"parameters": {"max_image_pixels": {"string_value": "2000000"}, '
                            '"image_formats": {"string_value": "PNG"}, "other": {"string_value": "x"}}}'}
    params = serving.model_parameters(args)
    assert params["max_image_pixels"] == "2000000"
    env = {"BABELWATCH_MAX_IMAGE_PIXELS": "3000000", "BABELWATCH_MAX_IMAGE_SIDE": "5000"}
    got = serving.image_limits_from(params, env, artifact_max_pixels=50_000_000)
    assert (got.max_pixels, got.max_side, got.formats) == (2_000_000, 5000, ("PNG",))  # parameter > env
    assert serving.image_limits_from({}, env).max_pixels == 3_000_000
    assert serving.image_limits_from({}, {}, artifact_max_pixels=1_000_000).max_pixels == 1_000_000
    assert serving.image_limits_from({"max_image_pixels": ""}, {}) == ImageLimits()  # "" leaves the default
    assert serving.model_parameters({"model_config": "{}"}) == {}


# --------------------------------------------------------------------------- the header check
TRAPS = {
    "1x10,000,000 PNG": (lambda: png(1, 10_000_000), "image too large: 1x10000000"),
    "10,000,000x1 PNG": (lambda: png(10_000_000, 1), "image too large: 10000000x1"),
    "1x1,000,000 PNG": (lambda: png(1, 1_000_000), "image too large: 1x1000000"),
    "7000x7000 RGBA PNG": (lambda: png(7000, 7000, 6), "image too large: 7000x7000 = 49000000 pixels"),
    "3000x3000 PNG (9 Mpx)": (lambda: png(3000, 3000), "image too large: 3000x3000 = 9000000 pixels"),
    "100x2100 PNG (21:1)": (lambda: png(100, 2100), "image aspect ratio too extreme: 100x2100"),
    "bomb header 100000x100000": (lambda: png_header_only(100_000, 100_000), "image too large"),
    "bomb header 8000x8000": (lambda: png_header_only(8000, 8000), "image too large: 8000x8000"),
    "0x0 PNG": (lambda: png_header_only(0, 0), "corrupt or truncated"),
    "empty": (lambda: b"", "empty image: 0 bytes"),
    "not an image": (lambda: b"hello, world", "not a decodable image"),
    "PNG cut inside its header": (lambda: png(64, 64)[:20], "corrupt or truncated"),
    "TIFF": (lambda: encoded("TIFF"), "image format TIFF not allowed"),
    "ICO": (lambda: encoded("ICO"), "image format ICO not allowed"),
    "EPS": (lambda: encoded("EPS"), "image format EPS not allowed"),
    "PDF": (lambda: encoded("PDF"), "image format PDF not allowed"),
    "PPM": (lambda: encoded("PPM"), "image format PPM not allowed"),
    "PSD": (lambda: b"8BPS\x00\x01" + bytes(40), "image format PSD not allowed"),
    "HEIC": (lambda: b"\x00\x00\x00\x18ftypheic" + bytes(40), "image format HEIF not allowed"),
    "SVG": (lambda: b"<svg xmlns='http://www.w3.org/2000/svg' width='9e9'/>", "image format SVG not allowed"),
}


@pytest.mark.parametrize("name", list(TRAPS))
def test_traps_are_refused_from_the_header_in_milliseconds(name):
    make, reason = TRAPS[name]
    data = make()
    check_image_header(encoded("PNG"))  # Pillow's first use loads its plugins (~80 ms): not the check's cost
    got, ms = _ms(check_image_header, data)
    assert got is not None and got.startswith(reason), got
    assert ms < 100, ms  # ~0.2 ms here; the 7000x7000 PNG took 2.3-8 s and ~0.8 GB to decode before
    with pytest.raises(ImageDecodeError, match="^" + reason.replace("(", r"\(").replace(")", r"\)")):
        preprocess_image(data, CFG)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_allowed_formats_pass_and_decode(fmt):
    data = encoded(fmt, (96, 64))
    assert check_image_header(data) is None
    assert sniff_format(data) == fmt
    a = preprocess_image(data, CFG)
    assert a.shape == (3, 224, 224) and a.dtype == np.float32 and np.isfinite(a).all()


def test_limits_decide_formats_and_sizes():
    only_jpeg = ImageLimits(formats=("JPEG",))
    assert check_image_header(encoded("PNG"), only_jpeg) == \
        "image format PNG not allowed (allowed: JPEG)"
    assert check_image_header(encoded("JPEG"), only_jpeg) is None
    tiff_too = ImageLimits(formats=DEFAULT_IMAGE_FORMATS + ("TIFF",))
    assert check_image_header(encoded("TIFF"), tiff_too) is None
    unknown = ImageLimits(formats=("PNG", "NOSUCHFORMAT"))  # a name Pillow lacks is skipped, not an error
    assert check_image_header(encoded("PNG"), unknown) is None
    assert check_image_header(encoded("JPEG"), unknown).startswith("image format JPEG not allowed")
    assert check_image_header(png(2048, 2048)) is None  # exactly the default pixel limit
    assert check_image_header(png(2049, 2048)).startswith("image too large")
    assert check_image_header(png(100, 2000)) is None  # 20:1 exactly
    assert check_image_header(png(300, 300), ImageLimits(max_pixels=90_000)) is None
    assert check_image_header(png(301, 300), ImageLimits(max_pixels=90_000)).startswith("image too large")


def test_header_of_a_huge_image_with_pillows_bomb_warning_as_an_error():
    data = png_header_only(10_000, 10_000)  # 100 Mpx: Pillow warns (DecompressionBombWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_image_header(data).startswith("image too large")
        with pytest.raises(ImageDecodeError, match="image too large"):
            decode_image(data, ImageLimits(max_pixels=10**9, max_side=10**6))


def test_png_text_chunks_cannot_cost_64_mb_at_open():
    import struct
    import zlib

    base = png(64, 64)
    bomb = zlib.compress(b"A" * (1 << 20), 9)
    chunk = lambda i: (struct.pack(">I", len(bomb) + 5) + b"zTXt" + b"k%02d\x00\x00" % i + bomb  # noqa: E731
                       + struct.pack(">I", zlib.crc32(b"zTXt" + b"k%02d\x00\x00" % i + bomb) & 0xFFFFFFFF))
    data = base[:33] + b"".join(chunk(i) for i in range(60)) + base[33:]  # 60 MB of text in 60 KB
    check_image_header(base)  # Pillow loads its plugins on first use
    got, ms = _ms(check_image_header, data)
    assert got is not None and "text chunks" in got
    assert ms < 150, ms


def test_truncated_pixels_pass_the_header_and_fail_decoding_with_a_reason():
    data = png(640, 480, truncate_at=300)
    assert check_image_header(data) is None  # the header is whole
    with pytest.raises(ImageDecodeError, match="corrupt or truncated image"):
        preprocess_image(data, CFG)


def test_animated_gif_is_its_first_frame():
    data = animated_gif(frames=40)
    assert check_image_header(data) is None
    from PIL import Image
    import io

    first = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BICUBIC), np.float32)
    a = preprocess_image(data, CFG)
    np.testing.assert_allclose(a, ((first - 127.0) / 128.0).transpose(2, 0, 1), atol=2 / 128)


def test_big_jpeg_is_decoded_at_reduced_scale():
    data = encoded("JPEG", (2048, 1536), quality=80)
    im = decode_image(data)
    assert im.size == (1024, 768)  # draft: 1/2 scale straight out of the decoder (both sides stay >= 512)
    assert preprocess_image(data, CFG).shape == (3, 224, 224)


def test_mpo_is_decoded_as_its_first_jpeg():
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(buf, format="MPO", save_all=True,
                                                   append_images=[Image.new("RGB", (64, 64))])
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert check_image_header(data) is None
    assert preprocess_image(data, CFG).shape == (3, 224, 224)


def test_extreme_but_allowed_shapes_resize_within_bounds():
    for w, h in [(1, 1), (1, 20), (20, 1), (8192, 410), (410, 8192)]:
        a = preprocess_image(png(w, h), CFG)
        assert a.shape == (3, 224, 224) and np.isfinite(a).all()


# --------------------------------------------------------------------------- per-row isolation
class _Tok:
    """A word-level tokenizer (``tokenizers``) with the model's interface; ``poison`` breaks it."""

    def __init__(self, poison: str | None = None):
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.pre_tokenizers import Whitespace

        vocab = {"[PAD]": 0, "[UNK]": 1, "good": 2, "bad": 3, "news": 4}
        self.tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
        self.tok.pre_tokenizer = Whitespace()
        self.poison = poison

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def encode_batch(self, texts, add_special_tokens=True):
        if self.poison and any(self.poison in t for t in texts):
            raise RuntimeError("tokenizer panicked")
        return self.tok.encode_batch(texts, add_special_tokens=add_special_tokens)

    def encode(self, text, add_special_tokens=True):
        if self.poison and self.poison in text:
            raise RuntimeError("tokenizer panicked")
        return self.tok.encode(text, add_special_tokens=add_special_tokens)


def _pre(poison: str | None = None, limits: ImageLimits | None = None) -> Preprocessor:
    return Preprocessor(TextTokenizer(_Tok(poison), max_length=16), ImagePreprocessConfig(), limits)


def test_every_bad_image_fails_only_its_own_row():
    rows = [
        ("good news", encoded("PNG")), ("bad news", png(1, 10_000_000)), ("good", png(1, 1_000_000)),
        ("bad", png(7000, 7000, 6)), ("news", png_header_only(100_000, 100_000)),
        ("good", png(640, 480, truncate_at=300)), ("bad", encoded("TIFF")), ("news", animated_gif()),
        ("good news", b""), ("bad news", None), ("", encoded("JPEG")), ("news", b"\x00garbage"),
    ]
    t0 = time.perf_counter()
    batch = _pre()([t for t, _ in rows], [im for _, im in rows])
    assert time.perf_counter() - t0 < 1.0
    ok_image = [0, 7, 10]
    assert np.flatnonzero(batch.has_image).tolist() == ok_image
    assert batch.feeds["pixel_values"].shape == (3, 3, 224, 224)
    assert batch.has_text.tolist() == [True] * 10 + [False, True]
    errs = batch.row_errors
    assert [i for i, e in enumerate(errs) if e] == [1, 2, 3, 4, 5, 6, 11]
    assert all(errs[i].startswith("image: ") for i in (1, 2, 3, 4, 5, 6, 11))
    assert "format TIFF not allowed" in errs[6] and "truncated" in errs[5]
    assert batch.modalities.tolist() == [3, 1, 1, 1, 1, 1, 1, 3, 1, 1, 2, 1]


def test_any_exception_while_preprocessing_an_image_is_that_rows_error(monkeypatch):
    from fusion_model import preprocess

    calls = []

    def exploding(im, cfg):
        calls.append(im.size)
        if im.size == (33, 33):
            raise OverflowError("signed integer is greater than maximum")
        if im.size == (34, 34):
            raise MemoryError()
        return np.zeros((3, cfg.crop, cfg.crop), np.float32)

    monkeypatch.setattr(preprocess, "image_to_array", exploding)
    batch = _pre()(["good", "bad", "news"], [png(33, 33), png(34, 34), png(35, 35)])
    assert batch.has_image.tolist() == [False, False, True]
    assert batch.row_errors[0] == "image: image preprocessing failed: OverflowError: signed integer is greater than maximum"
    assert batch.row_errors[1] == "image: image too large to preprocess: out of memory"
    assert batch.row_errors[2] is None


def test_a_text_that_breaks_the_tokenizer_fails_only_its_row():
    batch = _pre(poison="☠")(["good news", "bad ☠ news", "news"], [None, encoded("PNG"), None])
    assert batch.has_text.tolist() == [True, False, True]
    assert batch.row_errors[1] == "text: tokenizer failed: RuntimeError: tokenizer panicked"
    assert batch.row_errors[0] is None and batch.row_errors[2] is None
    assert batch.feeds["attention_mask"][1].sum() == 0 and batch.modalities.tolist() == [1, 2, 1]
    both = _pre(poison="☠")(["☠"], [b"junk"]).row_errors[0]
    assert both.startswith("text: tokenizer failed") and "; image: not a decodable image" in both


def test_preprocessor_limits_are_capped_by_the_artifact():
    pre = Preprocessor(TextTokenizer(_Tok()), ImagePreprocessConfig(max_pixels=10_000),
                       ImageLimits(max_pixels=10**6))
    assert pre.limits.max_pixels == 10_000
    assert pre(["x"], [png(101, 100)]).image_errors[0].startswith("image too large")


def test_error_column_and_request_isolation():
    col = serving.error_column([None, "image: too large", "text: x; image: y"])
    assert col.shape == (3, 1) and col.ravel().tolist() == [b"", b"image: too large", b"text: x; image: y"]

    def run(reqs):
        if "poison" in reqs:
            raise MemoryError("boom")
        return [f"ok:{r}" for r in reqs]

    logs = []
    got = serving.isolate(["a", "poison", "b"], run, lambda r, e: f"error:{r}:{type(e).__name__}", logs.append)
    assert got == ["ok:a", "error:poison:MemoryError", "ok:b"]
    assert logs and "one by one" in logs[0]
    assert serving.isolate(["a", "b"], run, None) == ["ok:a", "ok:b"]
    assert serving.isolate(["poison"], run, lambda r, e: "err") == ["err"]
    # a run that answers the wrong number of responses counts as a failure too
    assert serving.isolate(["a", "b"], lambda reqs: ["x"] if len(reqs) > 1 else [f"y{reqs[0]}"],
                           lambda r, e: "err") == ["ya", "yb"]


# --------------------------------------------------------------------------- the served models' execute()
class _PbUtils:
    """Stand-in for ``triton_python_backend_utils`` (it exists only inside Triton's stub process)."""

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, np.asarray(array)

        def as_numpy(self):
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors=None, error=None):
            self.outputs = {t.name: t.array for t in output_tensors or []}
            self.error = error

    class TritonError:
        def __init__(self, message):
            self.message = message

    @staticmethod
    def get_input_tensor_by_name(request, name):
        return request.get(name)


def _request(texts, images):
    n = len(texts)
    col = lambda xs: _PbUtils.Tensor("", np.array(xs, dtype=np.object_).reshape(n, 1))  # noqa: E731
    return {"TEXT": col([t.encode() for t in texts]), "IMAGE": col(images), "LANG": col([b"und"] * n)}


def _load_model(monkeypatch, name):
    import importlib.util
    import sys
    from pathlib import Path

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _PbUtils)
    path = bw_paths.REPO / "triton_repo" / "models" / name / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(f"_bw_model_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TritonPythonModel()


class _Session:
    """onnxruntime stand-in: fails the whole call when any row holds the token "bad" (id 3)."""

    def run(self, names, feeds):
        if (feeds["input_ids"] == 3).any():
            raise RuntimeError("onnxruntime: bad allocation")
        return [np.tile(np.float32([0.2, 0.3, 0.5]), (len(feeds["input_ids"]), 1))]


def test_fusion_execute_fails_only_the_request_that_fails(monkeypatch):
    from fusion_model.bucketing import run_grouped

    model = _load_model(monkeypatch, "fusion")
    model.serving, model.run_grouped, model.session, model.pre = serving, run_grouped, _Session(), _pre()
    requests = [_request(["good news", "news"], [encoded("PNG"), png(1, 10_000_000)]),
                _request(["bad news"], [b""]),
                _request(["good", "news", "good"], [png(7000, 7000, 6), b"", encoded("TIFF")])]
    out = model.execute(requests)
    assert len(out) == 3
    assert out[1].error is not None and "RuntimeError: onnxruntime: bad allocation" in out[1].error.message
    assert out[0].error is None and out[2].error is None
    assert out[0].outputs["PROBS"].shape == (2, 3) and out[2].outputs["PROBS"].shape == (3, 3)
    assert out[0].outputs["MODALITIES"].ravel().tolist() == [3, 1]
    errors = [e.decode() for r in (out[0], out[2]) for e in r.outputs["ERROR"].ravel()]
    assert errors[0] == "" and errors[1].startswith("image: image too large: 1x10000000")
    assert errors[2].startswith("image: image too large: 7000x7000") and errors[3] == ""
    assert errors[4].startswith("image: image format TIFF not allowed")


def test_fusion_preprocess_execute_isolates_rows_and_requests(monkeypatch):
    from fusion_model.dense_layout import per_request_feeds

    model = _load_model(monkeypatch, "fusion_preprocess")
    model.serving, model.pre, model.split = serving, _pre(), per_request_feeds
    out = model.execute([_request(["good news"], [png(1, 1_000_000)]), {"TEXT": None}])  # 2nd: malformed
    assert out[0].error is None and out[1].error is not None
    assert out[0].outputs["ERROR"].ravel()[0].decode().startswith("image: image too large: 1x1000000")
    assert out[0].outputs["HAS_IMAGE"].ravel().tolist() == [0.0]
    assert out[0].outputs["PIXEL_VALUES"].shape == (1, 3, 224, 224)


def test_cheap_execute_answers_each_request_on_its_own(monkeypatch):
    model = _load_model(monkeypatch, "cheap")
    out = model.execute([_request(["a", "bb"], [b"", b""]), {"TEXT": None}, _request(["c"], [b""])])
    assert [r.error is None for r in out] == [True, False, True]
    assert out[0].outputs["PROBS"].shape == (2, 3) and out[2].outputs["PROBS"].shape == (1, 3)
