"""What the fusion Python backends share (fusion_model/serving.py), without Triton: where a model
finds its files, and a failing request answered alone."""
from __future__ import annotations

import json
import types

from fusion_model import serving


def _args(tmp_path, parameters: dict[str, str] | None = None) -> dict[str, str]:
    """``initialize(args)`` as Triton's Python backend passes it: every value a string."""
    config = {"name": "m", "parameters": {k: {"string_value": v} for k, v in (parameters or {}).items()}}
    return {"model_repository": str(tmp_path / "m"), "model_version": "1", "model_config": json.dumps(config)}


def test_model_path_is_read_from_the_config_in_the_version_directory(tmp_path):
    version_dir = tmp_path / "m" / "1"
    args = _args(tmp_path, {"artifact": "built/fusion"})
    assert serving.model_path(args, "artifact", "artifact", "X_ENV", env={}) == str(version_dir / "built/fusion")
    assert serving.model_path(_args(tmp_path), "artifact", "artifact", "X_ENV", env={}) == str(version_dir / "artifact")
    absolute = _args(tmp_path, {"artifact": "/srv/models/fusion"})
    assert serving.model_path(absolute, "artifact", "artifact", "X_ENV", env={}) == "/srv/models/fusion"


def test_the_environment_overrides_the_config(tmp_path):
    args = _args(tmp_path, {"artifact": "built"})
    assert serving.model_path(args, "artifact", "artifact", "X_ENV", env={"X_ENV": "rel/dir"}) == "rel/dir"
    assert serving.model_path(args, "artifact", "artifact", "X_ENV", env={"X_ENV": ""}).endswith("/1/built")


class _FakePbUtils:
    """The part of triton_python_backend_utils the shared backend uses."""

    def __init__(self, with_logger: bool = True) -> None:
        self.warnings: list[str] = []
        self.InferenceResponse = lambda output_tensors, error=None: ("response", output_tensors, error)
        self.TritonError = lambda message: ("error", message)
        if with_logger:
            self.Logger = types.SimpleNamespace(log_warn=self.warnings.append)


def _backend(pb) -> serving.FusionBackend:
    class Model(serving.FusionBackend):
        pb_utils = pb

        def _execute(self, requests):
            if "poison" in requests:
                raise ValueError("bad request")
            return [("response", [f"ok:{r}"], None) for r in requests]

    return Model()


def test_a_failing_request_gets_its_own_error_and_the_others_their_answers():
    pb = _FakePbUtils()
    got = _backend(pb).execute(["a", "poison", "b"])
    assert got == [("response", ["ok:a"], None), ("response", [], ("error", "ValueError: bad request")),
                   ("response", ["ok:b"], None)]
    assert any("one by one" in w for w in pb.warnings)


def test_a_stub_without_a_logger_still_answers():
    got = _backend(_FakePbUtils(with_logger=False)).execute(["poison"])
    assert got == [("response", [], ("error", "ValueError: bad request"))]
