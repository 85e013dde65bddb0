"""The GPU variant's ensemble (preprocess -> engine), served for real on CPU with onnxruntime in the
engine's place (``--model-config-name=ensemble_cpu``): clients see the same model as the CPU variant,
row by row. Also: the dense graph equals the packed one, and the GPU check runs end to end with
onnxruntime as its candidate."""
from __future__ import annotations

import bw_paths
import json
from pathlib import Path

import numpy as np
import pytest

from bw_triton import infer, sample_images

pytestmark = pytest.mark.integration

REPO = bw_paths.REPO
MODELS = REPO / "triton_repo" / "models"
ARTIFACT = MODELS / "fusion" / "1" / "artifact"


@pytest.fixture(scope="module")
def dense():
    from conftest import ensure_model_built
    from fusion_model.tensorrt.export_dense import export

    ensure_model_built()
    return export()  # cached in the model cache after the first run


@pytest.fixture(scope="module")
def ensemble(dense, tmp_path_factory):
    from babelwatch.localstack.triton import TritonServer

    server = TritonServer(MODELS, run_dir=tmp_path_factory.mktemp("triton-ens"),
                          model_config_name="ensemble_cpu", load_models=["fusion"])
    server.start(timeout=180)
    try:
        yield server
    finally:
        server.stop()
        assert server.leftover_shm() == []


def test_dense_export_equals_packed_graph(dense):
    report = json.loads((dense / "dense.json").read_text())
    assert report["rows"] >= 70
    assert report["max_abs_diff_probs_vs_packed"] <= 1e-4
    assert (MODELS / "fusion_engine" / "1" / "dense" / "model_dense.onnx").is_file()


def test_ensemble_serves_the_same_model_as_the_cpu_variant(ensemble):
    from fusion_model.export import run_artifact

    imgs = sample_images(3)
    texts = ["Tesla recalls two million cars after a fatal crash", "特斯拉股价大涨，季度利润创新高", "",
             "トヨタ、過去最高益を更新", "Airbus livre un nombre record d'avions", "Die Aktie fällt",
             "A much longer sentence about quarterly earnings, guidance, margins and the outlook for the "
             "rest of the year, which pushes this row into a longer length bucket than the others have"]
    images = [b"", imgs[0], imgs[1], b"", b"\x89PNG this is not really a png", imgs[2], b""]
    served = infer(ensemble.grpc_url, texts, images)
    local, batch = run_artifact(ARTIFACT, texts, [im or None for im in images])

    np.testing.assert_allclose(served["PROBS"], local, atol=1e-4)
    assert served["MODALITIES"].ravel().tolist() == batch.modalities.tolist() == [1, 3, 2, 1, 1, 3, 1]
    errors = [e.decode() for e in served["ERROR"].ravel()]
    assert errors[4].startswith("image: ") and not any(errors[:4]) and not any(errors[5:])


def test_ensemble_isolates_image_traps_per_row(ensemble):
    """The GPU variant's preprocessing step refuses the same traps from their headers, row by row:
    one request, every valid row scored as the CPU variant scores it, each trap with its reason."""
    from bw_images import animated_gif, image_traps

    from fusion_model.export import run_artifact

    imgs = sample_images(1)
    traps = image_traps()
    texts = [f"Row {i}: the {name} quarter beat estimates" for i, (name, _, _) in enumerate(traps)]
    texts += ["Tesla recalls two million cars", "A zero-byte image is no image", "GIF: first frame only"]
    images = [data for _, data, _ in traps] + [imgs[0], b"", animated_gif(frames=30)]
    served = infer(ensemble.grpc_url, texts, images)
    errors = [e.decode() for e in served["ERROR"].ravel()]
    for (name, _, reason), err in zip(traps, errors):
        assert err.startswith(reason), (name, err)
    assert errors[len(traps):] == ["", "", ""]
    assert served["MODALITIES"].ravel().tolist() == [1] * len(traps) + [3, 1, 3]
    local, batch = run_artifact(ARTIFACT, texts, [im or None for im in images])
    assert batch.row_errors == [e or None for e in errors]
    np.testing.assert_allclose(served["PROBS"], local, atol=1e-4)


def test_ensemble_merges_concurrent_requests_of_different_lengths(ensemble):
    """Requests in different length buckets reach the engine separately; each gets its own rows."""
    from concurrent.futures import ThreadPoolExecutor

    from fusion_model.export import run_artifact

    short = ["Great quarter!", "Terrible news for shareholders", "Flat day"]
    long = [("Shares of the company fell sharply after the regulator opened an investigation into its "
             "accounting, and analysts cut their price targets across the board ") * 2] * 2
    jobs = [short, long, short[:1], long[:1]] * 3
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: infer(ensemble.grpc_url, t, [b""] * len(t))["PROBS"], jobs))
    ref_short, _ = run_artifact(ARTIFACT, short)
    ref_long, _ = run_artifact(ARTIFACT, long)
    for texts, probs in zip(jobs, results):
        ref = ref_short if texts[0] in short else ref_long
        np.testing.assert_allclose(probs, ref[: len(texts)], atol=1e-4)


def test_gpu_check_runs_with_onnxruntime_as_candidate(dense, tmp_path):
    from fusion_model.tensorrt import gpu_check

    rc = gpu_check.main(["--candidate", "onnxruntime", "--onnx", str(dense / "model_dense.onnx"),
                         "--artifact", str(ARTIFACT), "--seconds", "0.2", "--batch-sizes", "1,8",
                         "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 0 and report["verify"]["ok"]
    assert report["verify"]["max_abs_diff_probs"] <= 1e-5  # same graph, same runtime
    assert [t["batch"] for t in report["timing"]] == [1, 8]
    assert all(t["rows_per_s"] > 0 and t["p99_ms"] >= t["p50_ms"] for t in report["timing"])
