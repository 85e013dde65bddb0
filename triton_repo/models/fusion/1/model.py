"""Triton Python backend of the fusion model, CPU variant: raw text and image bytes in, the
requests the dynamic batcher merged tokenized and decoded together and scored by ONE onnxruntime
call. A bad input fails only its row (the reason in ERROR), a failing request only itself
(docs/design.md, "One bad input fails only itself"); image limits and where the artifact is found:
``fusion_model.serving`` and config.pbtxt.
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from fusion_model import serving
from fusion_model.bucketing import run_grouped


class TritonPythonModel(serving.FusionBackend):
    pb_utils = pb_utils

    def initialize(self, args):
        import onnxruntime as ort

        self.load_preprocessor(args)
        opts = ort.SessionOptions()
        # one thread per instance: two threads on two cores pushed p99 to 130-340 ms (shared NOTES)
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(self.artifact, "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        with open(os.path.join(self.artifact, "model_card.json"), encoding="utf-8") as fh:
            self.card = json.load(fh)

    def _execute(self, requests):
        texts, images, sizes = serving.gather(requests, pb_utils.get_input_tensor_by_name)
        batch = self.pre(texts, images)
        # similar-length groups: one long post no longer pads every short row (+26-45%, bench/RESULTS.md)
        probs = run_grouped(lambda f: self.session.run(["probs"], f)[0], batch.feeds).astype(np.float32)
        if probs.shape != (len(texts), 3):
            raise RuntimeError(f"model returned probs of shape {probs.shape} for {len(texts)} rows")
        modalities = batch.modalities.reshape(-1, 1)
        errors = serving.error_column(batch.row_errors)
        return [
            pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("PROBS", probs[start:end]),
                pb_utils.Tensor("MODALITIES", modalities[start:end]),
                pb_utils.Tensor("ERROR", errors[start:end]),
            ])
            for start, end in serving.slices(sizes)
        ]
