"""What the Triton Python backends of the fusion model share (triton_repo/models/fusion*/1/model.py):
turning the requests the dynamic batcher merged into one batch of rows, the ERROR column, the image
limits a model runs with, and isolating requests from each other.

Kept free of ``triton_python_backend_utils`` (it exists only inside the backend's stub): callers
pass its ``get_input_tensor_by_name`` and a function that turns an exception into an error response.

Image limits (``ImageLimits``, defaults in fusion_model/preprocess.py) reach a Triton model,
which cannot read the worker's settings, in this order, later ones winning:
  1. the defaults;
  2. the environment of the tritonserver process: ``BABELWATCH_MAX_IMAGE_PIXELS``,
     ``BABELWATCH_MAX_IMAGE_SIDE``, ``BABELWATCH_MAX_IMAGE_ASPECT``, ``BABELWATCH_IMAGE_FORMATS``
     (the very variables the worker's settings read, so one environment configures both);
  3. the model's config.pbtxt ``parameters`` with the settings' names, e.g.
     ``parameters: { key: "max_image_pixels" value: { string_value: "4194304" } }``;
then lowered to the artifact's own ``max_pixels`` (preprocess.json) when that is stricter, so no
model rebuild is needed to tighten them.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fusion_model.preprocess import IMAGE_LIMIT_FIELDS, ImageLimits


def _decode(values) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def gather(requests: Sequence, get_input: Callable) -> tuple[list[str], list[bytes | None], list[int]]:
    """Requests with TEXT and (optional) IMAGE -> (texts, images, rows per request), in order.
    An empty IMAGE value means "no image"."""
    texts: list[str] = []
    images: list[bytes | None] = []
    sizes: list[int] = []
    for request in requests:
        raw_text = get_input(request, "TEXT").as_numpy().reshape(-1)
        image_tensor = get_input(request, "IMAGE")
        raw_image = image_tensor.as_numpy().reshape(-1) if image_tensor is not None else [b""] * len(raw_text)
        sizes.append(len(raw_text))
        texts.extend(_decode(raw_text))
        images.extend(bytes(x) if x else None for x in raw_image)
    return texts, images, sizes


def gather_langs(requests: Sequence, get_input: Callable) -> list[str]:
    """The LANG values of the merged requests, in row order ("*" where a request has none)."""
    out: list[str] = []
    for request in requests:
        n = len(get_input(request, "TEXT").as_numpy().reshape(-1))
        tensor = get_input(request, "LANG")
        values = _decode(tensor.as_numpy().reshape(-1)) if tensor is not None else []
        out.extend(values if len(values) == n else [ANY_LANG] * n)
    return out


def error_column(row_errors: Sequence[str | None]) -> np.ndarray:
    """The ERROR output from ``Batch.row_errors``: ``b""`` or e.g. ``b"image: <why it was dropped>"``
    per row, shape [rows, 1]."""
    return np.array([e.encode("utf-8", "replace") if e else b"" for e in row_errors],
                    dtype=np.object_).reshape(-1, 1)


# The graph's extra output (``FusionModel(with_embedding=True)``): the L2-normalised text embedding
# [batch, Dt] the head already computes, so stories get it without a second inference
# (docs/design.md, "Stories"). Served as EMBEDDING, float16: half the bytes, ample for cosine.
EMBEDDING_OUTPUT = "text_emb"
TEXT_USED_BIT = 1  # bit of the MODALITIES column (as workers.scoring.TEXT_USED)
# Per-language means of the training texts' embeddings (artifact file). The served EMBEDDING is the
# text's embedding minus its language's mean, normalised again: e5 vectors carry a strong language
# component (same event in two languages ~0.87 cosine, two events in one language ~0.85); taking it
# out is what lets one story span languages (measured: docs/design.md "Stories").
CENTERS_FILE = "embedding_centers.json"
ANY_LANG = "*"  # the mean over all languages: for a language the corpus lacks, or "und"


def embedding_centers(embeddings: np.ndarray, langs: Sequence[str]) -> dict[str, list[float]]:
    """Mean embedding per language and over all (``*``)."""
    langs = np.asarray(list(langs))
    out = {lang: embeddings[langs == lang].mean(axis=0).astype(float).tolist() for lang in sorted(set(langs))}
    out[ANY_LANG] = embeddings.mean(axis=0).astype(float).tolist()
    return out


def write_centers(path, centers: Mapping[str, list[float]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(centers, fh)


def load_centers(artifact) -> dict[str, np.ndarray] | None:
    """The artifact's language centers, or None (an artifact built before them)."""
    try:
        with open(os.path.join(str(artifact), CENTERS_FILE), encoding="utf-8") as fh:
            raw = json.load(fh)
    except FileNotFoundError:
        return None
    return {lang: np.asarray(v, dtype=np.float32) for lang, v in raw.items()}


def embedding_column(embeddings: np.ndarray, modalities: np.ndarray, langs: Sequence[str] | None = None,
                     centers: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The EMBEDDING output: float16 [rows, Dt], each row minus its language's center (when the
    artifact has centers) and L2-normalised; zeros in rows whose text was not used (no text, or
    dropped): a client reads an all-zero row as "no embedding"."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if centers:
        fallback = centers.get(ANY_LANG, np.zeros(emb.shape[1], np.float32))
        emb = emb - np.stack([centers.get(lang, fallback) for lang in (langs or [ANY_LANG] * len(emb))])
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 1e-6)
    used = (np.asarray(modalities).reshape(-1) & TEXT_USED_BIT) > 0
    out = np.zeros(emb.shape, dtype=np.float16)
    out[used] = emb[used]
    return out


def model_parameters(args: Mapping) -> dict[str, str]:
    """The ``parameters`` of the model config Triton passes to ``initialize(args)``, as strings."""
    config = json.loads(args.get("model_config") or "{}")
    out = {}
    for key, value in (config.get("parameters") or {}).items():
        out[key] = value.get("string_value", "") if isinstance(value, dict) else str(value)
    return out


def model_path(args: Mapping, parameter: str, default: str, env_var: str,
               env: Mapping[str, str] | None = None) -> str:
    """A file or directory a served model loads, found as the python_backend examples find theirs:
    the config parameter ``parameter`` (else ``default``), relative to the model's version directory
    ``args["model_repository"]/args["model_version"]``; the environment variable ``env_var``, when
    set, overrides both (taken as it is)."""
    env = os.environ if env is None else env
    if env.get(env_var):
        return env[env_var]
    path = model_parameters(args).get(parameter) or default
    return os.path.join(args["model_repository"], str(args["model_version"]), path)


def image_limits_from(parameters: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
                      artifact_max_pixels: int | None = None) -> ImageLimits:
    """The image limits a served model applies: defaults < environment < config parameters, then
    the artifact's max_pixels when stricter (see the module docstring)."""
    env = os.environ if env is None else env
    limits = ImageLimits.from_env(env)
    limits = ImageLimits.from_mapping({k: (parameters or {}).get(k) for k in IMAGE_LIMIT_FIELDS}, base=limits)
    return limits.capped(artifact_max_pixels)


def isolate(requests: Sequence, run: Callable[[Sequence], list], error_response: Callable[[object, BaseException], object],
            log: Callable[[str], None] | None = None) -> list:
    """``run(requests)`` -> one response per request; when it raises, each request is run alone so
    that only the request that really fails gets ``error_response(request, exc)``, never the others
    the dynamic batcher merged with it. Nothing raises out of here."""
    try:
        responses = run(requests)
        if len(responses) != len(requests):
            raise RuntimeError(f"{len(responses)} responses for {len(requests)} requests")
        return responses
    except Exception as exc:  # noqa: BLE001 -- whatever it is, it must not fail the other requests
        if log is not None:
            log(f"batch of {len(requests)} requests failed ({type(exc).__name__}: {exc}); running them one by one")
        if len(requests) == 1:
            return [error_response(requests[0], exc)]
    out = []
    for request in requests:
        try:
            out.extend(run([request])[:1] or [error_response(request, RuntimeError("no response"))])
        except Exception as exc:  # noqa: BLE001
            if log is not None:
                log(f"request failed: {type(exc).__name__}: {exc}")
            out.append(error_response(request, exc))
    return out


def describe(exc: BaseException) -> str:
    """An exception as the message of a request's error response."""
    return f"{type(exc).__name__}: {exc}"[:2000]


def slices(sizes: Sequence[int]):
    """(start, end) of each request's rows in the merged batch."""
    start = 0
    for n in sizes:
        yield start, start + n
        start += n


class FusionBackend:
    """What the fusion Python backends share: the artifact's preprocessor, and ``execute`` isolating
    the merged requests from each other (:func:`isolate`). A subclass sets ``pb_utils`` (the stub's
    ``triton_python_backend_utils``, importable only inside Triton) and defines ``_execute``."""

    pb_utils: Any = None

    def load_preprocessor(self, args: Mapping) -> None:
        from fusion_model.preprocess import Preprocessor

        self.artifact = model_path(args, "artifact", "artifact", "BABELWATCH_FUSION_ARTIFACT")
        # image limits: defaults < environment < config parameters, capped by the artifact's own
        self.pre = Preprocessor.from_dir(self.artifact, image_limits_from(model_parameters(args)))

    def execute(self, requests):
        return isolate(requests, self._execute, self._error_response, self._log_warn)

    def _execute(self, requests) -> list:
        raise NotImplementedError

    def _error_response(self, request, exc: BaseException):
        pb = self.pb_utils
        return pb.InferenceResponse(output_tensors=[], error=pb.TritonError(describe(exc)))

    def _log_warn(self, message: str) -> None:
        logger = getattr(self.pb_utils, "Logger", None)  # absent from older stubs
        if logger is not None:
            logger.log_warn(message)
