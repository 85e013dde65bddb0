"""Triton Python backend of the fusion model, CPU variant: raw text and image bytes in, the
requests the dynamic batcher merged tokenized and decoded together and scored by ONE onnxruntime
call. A bad input fails only its row (the reason in ERROR), a failing request only itself
(docs/design.md, "One bad input fails only itself"); image limits and where the artifact is found:
``fusion_model.serving`` and config.pbtxt. With the probabilities, from the same onnxruntime call,
EMBEDDING: the text embedding relative to its language's center (docs/design.md, "Stories").
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from fusion_model import serving
from fusion_model.bucketing import run_grouped
from fusion_model.serving import EMBEDDING_OUTPUT


class TritonPythonModel(serving.FusionBackend):
    pb_utils = pb_utils
    fetch = ["probs"]  # + the embedding output when the artifact has it (initialize)
    centers = None  # the artifact's per-language embedding centers

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
        # the text embedding the head already computes (stories); absent from artifacts built before it
        self.fetch = ["probs"] + [o.name for o in self.session.get_outputs() if o.name == EMBEDDING_OUTPUT]
        self.centers = serving.load_centers(self.artifact)  # per-language means (None: older artifact)

    def _execute(self, requests):
        texts, images, sizes = serving.gather(requests, pb_utils.get_input_tensor_by_name)
        batch = self.pre(texts, images)
        # similar-length groups: one long post no longer pads every short row (+26-45%, bench/RESULTS.md)
        outs = run_grouped(lambda f: np.concatenate(self.session.run(self.fetch, f), axis=1), batch.feeds)
        probs = outs[:, :3].astype(np.float32)
        if probs.shape != (len(texts), 3):
            raise RuntimeError(f"model returned probs of shape {probs.shape} for {len(texts)} rows")
        # EMBEDDING as float16 (half the bytes; cosine needs no more); zeros in rows without text
        embedding = None
        if len(self.fetch) > 1:
            langs = serving.gather_langs(requests, pb_utils.get_input_tensor_by_name) if self.centers else None
            embedding = serving.embedding_column(outs[:, 3:], batch.modalities, langs, self.centers)
        modalities = batch.modalities.reshape(-1, 1)
        errors = serving.error_column(batch.row_errors)
        return [
            pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("PROBS", probs[start:end]),
                pb_utils.Tensor("MODALITIES", modalities[start:end]),
                pb_utils.Tensor("ERROR", errors[start:end]),
            ] + ([pb_utils.Tensor("EMBEDDING", embedding[start:end])] if embedding is not None else []))
            for start, end in serving.slices(sizes)
        ]
