"""Trivially cheap stand-in with the fusion model's inputs and outputs (benchmarks only).

Its answer depends on the text length so outputs still vary, at a cost of microseconds per batch.
It never decodes images. Each request is answered on its own: one malformed request gets an error
response, never an exception out of execute() that would fail every request merged with it.
"""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except Exception as exc:  # noqa: BLE001 -- this request only
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}")))
        return responses

    @staticmethod
    def _one(request):
        texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
        n = len(texts)
        lengths = np.array([len(t) for t in texts], dtype=np.float32)
        pos = (lengths % 7) / 10.0 + 0.1
        probs = np.stack([0.8 - pos, np.full(n, 0.2, np.float32), pos], axis=1).astype(np.float32)
        modalities = np.ones((n, 1), dtype=np.int32)
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("PROBS", probs), pb_utils.Tensor("MODALITIES", modalities)]
        )
