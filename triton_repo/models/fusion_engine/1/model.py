"""Triton Python backend: CPU stand-in for the TensorRT engine (configs/ensemble_cpu.pbtxt).

Runs the dense ONNX graph that build_engine.py turns into ``model.plan`` on a GPU, so the GPU
variant's ensemble can be served and checked on a CPU-only machine. Requests were merged by the
batcher only when their shapes agree (same length bucket), so each execute() is one onnxruntime
call per distinct shape. The graph is config's ``dense_model`` parameter in this model's version
directory (``dense/model_dense.onnx``, linked by ``python -m fusion_model.tensorrt.export_dense``);
BABELWATCH_FUSION_DENSE overrides it.
"""
import numpy as np
import triton_python_backend_utils as pb_utils

INPUTS = ("input_ids", "attention_mask", "pixel_values", "has_image")


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        from fusion_model.serving import model_path

        path = model_path(args, "dense_model", "dense/model_dense.onnx", "BABELWATCH_FUSION_DENSE")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        feeds = [{k: pb_utils.get_input_tensor_by_name(r, k).as_numpy() for k in INPUTS} for r in requests]
        for f in feeds:
            f["has_image"] = f["has_image"].reshape(-1).astype(np.float32)
        # one call per distinct sequence length: rows of different lengths cannot share a tensor
        by_len = {}
        for i, f in enumerate(feeds):
            by_len.setdefault(f["input_ids"].shape[1], []).append(i)
        outs = [None] * len(feeds)
        for idx in by_len.values():
            merged = {k: np.concatenate([feeds[i][k] for i in idx]) for k in INPUTS}
            probs, gates = self.session.run(["probs", "gates"], merged)
            start = 0
            for i in idx:
                n = len(feeds[i]["input_ids"])
                outs[i] = (probs[start:start + n], gates[start:start + n])
                start += n
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("probs", p.astype(np.float32)),
                                                          pb_utils.Tensor("gates", g.astype(np.float32))])
                for p, g in outs]
