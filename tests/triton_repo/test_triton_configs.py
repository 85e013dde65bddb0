"""The fusion model's configurations agree: CPU and GPU variants show clients the same model, and
the GPU ensemble's steps fit each other and the dense graph."""
import bw_paths
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from fusion_model.preprocess import INPUT_NAMES, OUTPUT_NAMES

MODELS = bw_paths.REPO / "triton_repo" / "models"


def load(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def io(tensors) -> list[tuple]:
    return [(t.name, t.data_type, list(t.dims)) for t in tensors]


@pytest.fixture(scope="module")
def cfg():
    return {
        "cpu": load(MODELS / "fusion" / "config.pbtxt"),
        "gpu": load(MODELS / "fusion" / "configs" / "gpu.pbtxt"),
        "ensemble_cpu": load(MODELS / "fusion" / "configs" / "ensemble_cpu.pbtxt"),
        "pre": load(MODELS / "fusion_preprocess" / "config.pbtxt"),
        "engine_gpu": load(MODELS / "fusion_engine" / "configs" / "gpu.pbtxt"),
        "engine_cpu": load(MODELS / "fusion_engine" / "configs" / "ensemble_cpu.pbtxt"),
    }


def test_gpu_variant_has_the_cpu_variants_name_and_tensors(cfg):
    assert cfg["gpu"].name == cfg["cpu"].name == "fusion"
    assert io(cfg["gpu"].input) == io(cfg["cpu"].input)
    # EMBEDDING (stories) is served by the CPU variant only so far: clients ask for it when declared
    assert io(cfg["gpu"].output) == [t for t in io(cfg["cpu"].output) if t[0] != "EMBEDDING"]
    assert "EMBEDDING" in [t[0] for t in io(cfg["cpu"].output)]
    assert cfg["gpu"].platform == "ensemble"
    assert cfg["gpu"] == cfg["ensemble_cpu"]  # the CPU check serves exactly the GPU ensemble


def test_engine_is_tensorrt_on_gpu_and_its_stand_in_has_the_same_tensors(cfg):
    gpu, cpu = cfg["engine_gpu"], cfg["engine_cpu"]
    assert gpu.platform == "tensorrt_plan"
    assert [g.kind for g in gpu.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert cpu.backend == "python" and [g.kind for g in cpu.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert gpu.input == cpu.input and gpu.output == cpu.output
    assert gpu.max_batch_size == cpu.max_batch_size
    # the engine is the dense ONNX graph: same tensor names, in the same order
    assert [t.name for t in gpu.input] == list(INPUT_NAMES)
    assert {t.name for t in gpu.output} == set(OUTPUT_NAMES)


def test_ensemble_steps_connect_with_matching_types(cfg):
    ens = cfg["gpu"]
    pre_step, engine_step = ens.ensemble_scheduling.step
    assert pre_step.model_name == "fusion_preprocess" and engine_step.model_name == "fusion_engine"
    pre_out = {t.name: t for t in cfg["pre"].output}
    engine_in = {t.name: t for t in cfg["engine_gpu"].input}
    produced = {pre_step.output_map[k]: pre_out[k] for k in pre_step.output_map}
    for engine_name, tensor in engine_step.input_map.items():
        src = produced[tensor]
        assert src.data_type == engine_in[engine_name].data_type, engine_name
        assert list(src.dims) == list(engine_in[engine_name].dims), engine_name
    # every ensemble output comes from a step, with the client-facing type
    outs = {t.name: t for t in ens.output}
    made = {**{v: pre_out[k] for k, v in pre_step.output_map.items()},
            **{v: next(t for t in cfg["engine_gpu"].output if t.name == k) for k, v in engine_step.output_map.items()}}
    for name, t in outs.items():
        assert made[name].data_type == t.data_type, name
    assert ens.max_batch_size <= min(cfg["pre"].max_batch_size, cfg["engine_gpu"].max_batch_size)
