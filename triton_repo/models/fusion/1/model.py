"""Triton Python backend for the multilingual text+image fusion model (CPU variant).

execute() is batch-aware by contract: every request the dynamic batcher merged is tokenized and
decoded together and scored by ONE onnxruntime call. Tokenization and image decoding live here,
so clients send raw UTF-8 text and image bytes.

Isolation: a bad input fails only its own row. Images are checked from their header before any
decoding (format, size, side, aspect ratio: ``ImageLimits``); any failure while decoding, resizing
or normalising an image (or tokenizing a text) drops that input of that row, which is scored on
what is left, with the reason in ERROR. Should a merged batch still fail as a whole, each request
is run alone and only the one that fails gets an error response (never an exception out of
execute(), which would fail every merged request).

Image limits: defaults in fusion_model/preprocess.py, overridden by the environment
(BABELWATCH_MAX_IMAGE_PIXELS, _MAX_IMAGE_SIDE, _MAX_IMAGE_ASPECT, _IMAGE_FORMATS), then by this
model's config.pbtxt ``parameters`` of the same lower-case names, and capped by the artifact's
max_pixels (fusion_model/serving.py).

The artifact (model.onnx, tokenizer, preprocess.json) is built by ``babelwatch model build`` and
linked as ``artifact/`` next to this file (or named by BABELWATCH_FUSION_ARTIFACT).
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = os.path.dirname(os.path.abspath(__file__))


def _log_warn(message):
    logger = getattr(pb_utils, "Logger", None)
    if logger is not None:
        logger.log_warn(message)


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        from fusion_model import serving
        from fusion_model.bucketing import run_grouped
        from fusion_model.preprocess import Preprocessor

        self.serving = serving
        self.run_grouped = run_grouped

        artifact = os.environ.get("BABELWATCH_FUSION_ARTIFACT") or os.path.join(HERE, "artifact")
        # image limits: defaults < environment < config parameters, capped by the artifact's own
        self.pre = Preprocessor.from_dir(artifact, serving.image_limits_from(serving.model_parameters(args)))
        opts = ort.SessionOptions()
        # one thread per instance: two threads on two cores pushed p99 to 130-340 ms (shared NOTES)
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(artifact, "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        with open(os.path.join(artifact, "model_card.json"), encoding="utf-8") as fh:
            self.card = json.load(fh)

    def execute(self, requests):
        return self.serving.isolate(requests, self._execute, self._error_response, _log_warn)

    def _error_response(self, request, exc):
        return pb_utils.InferenceResponse(output_tensors=[],
                                          error=pb_utils.TritonError(self.serving.describe(exc)))

    def _execute(self, requests):
        texts, images, sizes = self.serving.gather(requests, pb_utils.get_input_tensor_by_name)
        batch = self.pre(texts, images)
        # similar-length groups: one long post no longer pads every short row (+26-45%, bench/RESULTS.md)
        probs = self.run_grouped(lambda f: self.session.run(["probs"], f)[0], batch.feeds).astype(np.float32)
        if probs.shape != (len(texts), 3):
            raise RuntimeError(f"model returned probs of shape {probs.shape} for {len(texts)} rows")
        modalities = batch.modalities.reshape(-1, 1)
        errors = self.serving.error_column(batch.row_errors)
        return [
            pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("PROBS", probs[start:end]),
                pb_utils.Tensor("MODALITIES", modalities[start:end]),
                pb_utils.Tensor("ERROR", errors[start:end]),
            ])
            for start, end in self.serving.slices(sizes)
        ]
