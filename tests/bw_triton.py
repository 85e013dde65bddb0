"""Talking to the fusion model on a real Triton: raw gRPC requests and the demo stream's images."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import orjson
import tritonclient.grpc as grpcclient
from fusion_model.corpora import SAMPLE_EVENTS

REPO = Path(__file__).resolve().parents[1]


def sample_images(n: int) -> list[bytes]:
    out = []
    for line in SAMPLE_EVENTS.read_bytes().splitlines():
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("image_b64"):
            out.append(base64.b64decode(obj["image_b64"]))
        if len(out) == n:
            break
    return out


def infer(url: str, texts: list[str], images: list[bytes], model: str = "fusion") -> dict[str, np.ndarray]:
    client = grpcclient.InferenceServerClient(url)
    n = len(texts)
    arrays = {
        "TEXT": np.array([t.encode() for t in texts], dtype=np.object_).reshape(n, 1),
        "IMAGE": np.array(images, dtype=np.object_).reshape(n, 1),
        "LANG": np.array([b"und"] * n, dtype=np.object_).reshape(n, 1),
    }
    inputs = []
    for name, arr in arrays.items():
        x = grpcclient.InferInput(name, list(arr.shape), "BYTES")
        x.set_data_from_numpy(arr)
        inputs.append(x)
    result = client.infer(model, inputs)
    return {k: result.as_numpy(k) for k in ("PROBS", "MODALITIES", "ERROR")}


def served_models(tmp_path_factory):
    """A real tritonserver with the repository's models (fusion and cheap); use as a module-scoped
    fixture: ``triton = pytest.fixture(scope="module")(served_models)``."""
    from babelwatch.localstack.triton import SERVED_MODELS, TritonServer
    from conftest import ensure_model_built

    ensure_model_built()
    server = TritonServer(model_repository=REPO / "triton_repo" / "models",
                          run_dir=tmp_path_factory.mktemp("triton"), load_models=SERVED_MODELS)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert server.leftover_shm() == []
