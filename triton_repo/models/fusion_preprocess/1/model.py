"""Triton Python backend: the GPU variant's preprocessing step (see ../config.pbtxt). The merged
requests are tokenized and decoded together, then split back per request, each padded to its own
length bucket (fusion_model.dense_layout.per_request_feeds). Isolation, image limits and the
artifact (the CPU variant's) as in ../../fusion/1/model.py.
"""
import triton_python_backend_utils as pb_utils

from fusion_model import serving
from fusion_model.dense_layout import per_request_feeds


class TritonPythonModel(serving.FusionBackend):
    pb_utils = pb_utils

    def initialize(self, args):
        self.load_preprocessor(args)

    def _execute(self, requests):
        texts, images, sizes = serving.gather(requests, pb_utils.get_input_tensor_by_name)
        batch = self.pre(texts, images)
        modalities = batch.modalities.reshape(-1, 1)
        errors = serving.error_column(batch.row_errors)
        per_request = per_request_feeds(batch.feeds, sizes, self.pre.text.pad_id)
        return [
            pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("INPUT_IDS", feeds["input_ids"]),
                pb_utils.Tensor("ATTENTION_MASK", feeds["attention_mask"]),
                pb_utils.Tensor("PIXEL_VALUES", feeds["pixel_values"]),
                pb_utils.Tensor("HAS_IMAGE", feeds["has_image"].reshape(-1, 1)),
                pb_utils.Tensor("MODALITIES", modalities[start:end]),
                pb_utils.Tensor("ERROR", errors[start:end]),
            ])
            for feeds, (start, end) in zip(per_request, serving.slices(sizes))
        ]
