"""Triton Python backend: the GPU variant's preprocessing step (see ../config.pbtxt).

Batch-aware: all merged requests are tokenized and decoded together, then split back per request,
each padded to its own length bucket (fusion_model.dense.per_request_feeds).

Isolation, as in the CPU variant (../../fusion/1/model.py): images are checked from their header
before decoding (``ImageLimits``); a bad image (or text) fails only its row, which goes on without
it, with the reason in ERROR; should a merged batch still fail as a whole, each request is run alone
and only the failing one gets an error response. Image limits: the environment
(BABELWATCH_MAX_IMAGE_PIXELS, _MAX_IMAGE_SIDE, _MAX_IMAGE_ASPECT, _IMAGE_FORMATS), then this
model's config.pbtxt ``parameters`` of the same lower-case names, capped by the artifact's
max_pixels (fusion_model/serving.py).
The artifact (tokenizer, preprocess.json) is the CPU variant's: ``artifact/`` next to this file
(linked by ``babelwatch model build``) or BABELWATCH_FUSION_ARTIFACT.
"""
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
        from fusion_model import serving
        from fusion_model.dense_layout import per_request_feeds
        from fusion_model.preprocess import Preprocessor

        self.serving = serving

        artifact = os.environ.get("BABELWATCH_FUSION_ARTIFACT") or os.path.join(HERE, "artifact")
        # image limits: defaults < environment < config parameters, capped by the artifact's own
        self.pre = Preprocessor.from_dir(artifact, serving.image_limits_from(serving.model_parameters(args)))
        self.split = per_request_feeds

    def execute(self, requests):
        return self.serving.isolate(requests, self._execute, self._error_response, _log_warn)

    def _error_response(self, request, exc):
        return pb_utils.InferenceResponse(output_tensors=[],
                                          error=pb_utils.TritonError(self.serving.describe(exc)))

    def _execute(self, requests):
        texts, images, sizes = self.serving.gather(requests, pb_utils.get_input_tensor_by_name)
        batch = self.pre(texts, images)
        modalities = batch.modalities.reshape(-1, 1)
        errors = self.serving.error_column(batch.row_errors)
        per_request = self.split(batch.feeds, sizes, self.pre.text.pad_id)
        return [
            pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("INPUT_IDS", feeds["input_ids"]),
                pb_utils.Tensor("ATTENTION_MASK", feeds["attention_mask"]),
                pb_utils.Tensor("PIXEL_VALUES", feeds["pixel_values"]),
                pb_utils.Tensor("HAS_IMAGE", feeds["has_image"].reshape(-1, 1)),
                pb_utils.Tensor("MODALITIES", modalities[start:end]),
                pb_utils.Tensor("ERROR", errors[start:end]),
            ])
            for feeds, (start, end) in zip(per_request, self.serving.slices(sizes))
        ]
