"""Frozen-encoder embeddings (computed once, cached on disk) and training of fusion + head.

The encoders never train: text embeddings are computed once per (encoder fingerprint, source,
texts) and stored as ``.npy`` under the model cache; the synthetic image bank's embeddings likewise
per (image encoder fingerprint, generator version, size, seed). Training then touches only the
small FusionClassifier, with fixed seeds (same inputs -> same weights on the same machine).

Images: each epoch, a fraction of the examples gets a synthetic image from the training part of
the bank, of the example's label with probability ``image_agree`` (else of another label), and a
fraction of the others gets a distractor (an image without label signal, e.g. a photo).
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fusion_model.data import Example
from fusion_model.fusion import LABELS, FusionClassifier, FusionConfig
from fusion_model.synthetic import DISTRACTOR, GENERATOR_VERSION, assign_images, image_bank

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- embedding caches
def _atomic_save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{np.random.randint(1 << 30)}.npy")
    np.save(tmp, arr)
    tmp.replace(path)


def embed_texts(examples: list[Example], encoder, cache_dir: Path, batch_size: int = 32) -> np.ndarray:
    """[N, dim] float32 text embeddings, cached per source (editing one corpus re-embeds only it)."""
    out = np.zeros((len(examples), encoder.dim), dtype=np.float32)
    fp = encoder.fingerprint()
    by_source: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_source.setdefault(ex.source, []).append(i)
    for source, idx in sorted(by_source.items()):
        texts = [examples[i].text for i in idx]
        h = hashlib.sha256(fp.encode())
        for t in texts:
            h.update(t.encode() + b"\0")
        path = Path(cache_dir) / f"text-{source}-{h.hexdigest()[:24]}.npy"
        if path.is_file():
            emb = np.load(path)
            log.info("embeddings %-14s %5d texts: cached (%s)", source, len(texts), path.name)
        else:
            t0 = time.perf_counter()
            emb = encoder.encode(texts, batch_size=batch_size, progress=f"embed {source}")
            dt = time.perf_counter() - t0
            log.info("embeddings %-14s %5d texts in %.1f s (%.0f texts/s)", source, len(texts), dt, len(texts) / dt)
            _atomic_save(path, emb)
        out[idx] = emb
    return out


@dataclass
class ImageBank:
    """Synthetic images embedded once: ``emb`` [M, Di], ``labels`` [M] (DISTRACTOR = -1 for the
    images without signal), ``train``/``eval`` row ids (every label split the same way)."""

    emb: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    eval: np.ndarray
    n_per_class: int
    seed: int
    n_distractors: int = 0

    def images(self) -> list[bytes]:
        """The PNG bytes again (deterministic in the seed)."""
        return image_bank(self.n_per_class, self.seed, n_distractors=self.n_distractors)[0]


def embed_image_bank(encoder, cache_dir: Path, n_per_class: int = 80, seed: int = 7,
                     eval_fraction: float = 0.25, n_distractors: int = 80) -> ImageBank:
    images, labels = image_bank(n_per_class, seed, n_distractors=n_distractors)
    key = hashlib.sha256(f"{encoder.fingerprint()}:{GENERATOR_VERSION}:{n_per_class}:{seed}:{n_distractors}".encode()
                         ).hexdigest()[:24]
    path = Path(cache_dir) / f"imagebank-{key}.npy"
    if path.is_file():
        emb = np.load(path)
        log.info("image bank: %d synthetic images, embeddings cached", len(images))
    else:
        t0 = time.perf_counter()
        emb = encoder.encode_bytes(images, batch_size=16)
        log.info("image bank: %d synthetic images embedded in %.1f s", len(images), time.perf_counter() - t0)
        _atomic_save(path, emb)
    # every class split the same way: the first (1 - eval_fraction) of its images train
    train, evl = [], []
    for c in np.unique(labels):
        rows = np.nonzero(labels == c)[0]
        k = int(round(len(rows) * (1 - eval_fraction)))
        train.extend(rows[:k])
        evl.extend(rows[k:])
    return ImageBank(emb.astype(np.float32), labels, np.array(sorted(train)), np.array(sorted(evl)), n_per_class, seed,
                     n_distractors)


def draw_images(bank: ImageBank | None, labels: np.ndarray, fraction: float, agree: float, split: str,
                rng: np.random.Generator, distractor_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per example: image embedding (zeros where none) and has_image. A ``fraction`` of the
    examples gets a label-correlated synthetic image; of the others, a ``distractor_fraction``
    gets a distractor (no label signal)."""
    dim = bank.emb.shape[1] if bank is not None else 1
    n = len(labels)
    emb = np.zeros((n, dim), np.float32)
    if bank is None or (fraction <= 0 and distractor_fraction <= 0):
        return emb, np.zeros(n, bool)
    rows = bank.train if split == "train" else bank.eval
    chosen, has = assign_images(labels, bank.labels, rows, fraction, agree, rng)
    emb[has] = bank.emb[chosen[has]]
    distractors = rows[bank.labels[rows] == DISTRACTOR]
    if distractor_fraction > 0 and len(distractors):
        extra = (~has) & (rng.random(n) < distractor_fraction)
        emb[extra] = bank.emb[distractors[rng.integers(len(distractors), size=int(extra.sum()))]]
        has = has | extra
    return emb, has


# --------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.05
    warmup_steps: int = 50
    lang_weight_power: float = 0.5  # example weight ~ n(lang)^-power: small languages count more
    image_fraction: float = 0.5  # share of training examples with a synthetic image (0: text only)
    image_agree: float = 0.8  # P(the image's label == the text's label)
    distractor_fraction: float = 0.2  # of the examples without such an image: P(a distractor image)
    aux_text_weight: float = 1.0  # extra loss on the text-only path of examples that have an image
    seed: int = 13
    fusion: dict = field(default_factory=dict)  # FusionConfig overrides (dim, p_drop_image, ...)

    def to_dict(self) -> dict:
        return asdict(self)


def _example_weights(langs: list[str], power: float) -> np.ndarray:
    uniq, inv, counts = np.unique(np.array(langs), return_inverse=True, return_counts=True)
    w = counts[inv].astype(np.float64) ** -power
    return (w / w.mean()).astype(np.float32)


def train_fusion(text_emb: np.ndarray, labels: np.ndarray, langs: list[str], cfg: TrainConfig,
                 bank: ImageBank | None, image_dim: int, threads: int = 1) -> FusionClassifier:
    """Train FusionClassifier on precomputed text embeddings (+ synthetic images drawn each epoch).

    One thread by default: the matrices are small, and a second thread on a busy 2-core machine
    made training up to 7x slower (oversubscription) without helping on an idle one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(text_emb, labels, langs, cfg, bank, image_dim)
    finally:
        torch.set_num_threads(before)


def _train(text_emb: np.ndarray, labels: np.ndarray, langs: list[str], cfg: TrainConfig,
           bank: ImageBank | None, image_dim: int) -> FusionClassifier:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    fcfg = FusionConfig(text_dim=text_emb.shape[1], image_dim=image_dim, **cfg.fusion)
    model = FusionClassifier(fcfg)
    n = len(labels)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to 0
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        return warm * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=cfg.label_smoothing)
    xt = torch.from_numpy(text_emb.astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    w = torch.from_numpy(_example_weights(langs, cfg.lang_weight_power))
    has_text = torch.from_numpy(np.any(text_emb != 0, axis=1).astype(np.float32))
    model.train()
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        img, has_img = draw_images(bank, labels, cfg.image_fraction, cfg.image_agree, "train", rng,
                                   cfg.distractor_fraction if cfg.image_fraction > 0 else 0.0)
        if img.shape[1] != image_dim:
            img = np.zeros((n, image_dim), np.float32)
        xi, hi = torch.from_numpy(img), torch.from_numpy(has_img.astype(np.float32))
        perm = torch.from_numpy(rng.permutation(n))
        total_loss = 0.0
        for s in range(0, n, cfg.batch_size):
            b = perm[s:s + cfg.batch_size]
            logits = model(xt[b], xi[b], hi[b], has_text[b])
            loss = (loss_fn(logits, y[b]) * w[b]).sum() / w[b].sum()
            if cfg.aux_text_weight > 0:
                # the text-only path of the examples that have an image: keeps the text pathway as
                # well trained as a text-only model's (otherwise an image "explains away" the label)
                m = (hi[b] > 0) & (has_text[b] > 0)
                if m.any():
                    bm = b[m]
                    lt = model(xt[bm], xi[bm], torch.zeros(len(bm)), has_text[bm])
                    loss = loss + cfg.aux_text_weight * (loss_fn(lt, y[bm]) * w[bm]).sum() / w[b].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(b)
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == cfg.epochs:
            log.debug("epoch %d/%d loss %.4f", epoch + 1, cfg.epochs, total_loss / n)
    log.info("trained fusion on %d examples, %d epochs in %.1f s (image fraction %.2f)", n, cfg.epochs,
             time.perf_counter() - t0, cfg.image_fraction)
    model.eval()
    return model


@torch.inference_mode()
def predict(model: FusionClassifier, text_emb: np.ndarray, image_emb: np.ndarray | None = None,
            has_image: np.ndarray | None = None, has_text: np.ndarray | None = None,
            batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """-> probs [N, 3], gates [N, 2] (eval mode)."""
    model.eval()
    n = len(text_emb)
    if image_emb is None:
        image_emb = np.zeros((n, model.config.image_dim), np.float32)
    if has_image is None:
        has_image = np.zeros(n, bool)
    if has_text is None:
        has_text = np.ones(n, bool)
    probs, gates = [], []
    for s in range(0, n, batch_size):
        sl = slice(s, s + batch_size)
        logits, g = model(torch.from_numpy(text_emb[sl]), torch.from_numpy(image_emb[sl]),
                          torch.from_numpy(has_image[sl].astype(np.float32)),
                          torch.from_numpy(has_text[sl].astype(np.float32)), return_gates=True)
        probs.append(torch.softmax(logits, -1).numpy())
        gates.append(g.numpy())
    return np.concatenate(probs), np.concatenate(gates)


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy and macro-F1 over the labels present in y_true (zh/de/fr/nl have no neutral)."""
    from sklearn.metrics import accuracy_score, f1_score

    present = sorted(set(int(v) for v in y_true))
    return {"n": int(len(y_true)), "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
            "macro_f1": round(float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)), 4)}


def save_fusion(model: FusionClassifier, path: Path, extra: dict | None = None) -> None:
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "labels": list(LABELS),
                **(extra or {})}, path)


def load_fusion(path: Path) -> FusionClassifier:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    model = FusionClassifier(FusionConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
