"""The backbones' twins with their pools first (tagging.onnx.pool_first): the same
outputs as Essentia's, in about two thirds of the time (benchmarks/bench_pipeline.py
--trace measures it), for the twins made now and for those made before."""

import os
import subprocess
import sys

import numpy as np
import onnx as onnx_pkg
from django.conf import settings

from tagging import onnx, runtime
from tagging.catalog import get_catalog

REFERENCE = settings.SHARED_DIR / "fixtures/reference/msd-musicnn-1_joram.npz"
BACKBONE_PB = settings.NOMARR_MODELS_DIR / "msd-musicnn-1.pb"


def _pools_after_a_norm(model) -> int:
    """MaxPools fed by a BatchNormalization: the chain pool_first rewrites."""
    made_by = {out: node.op_type for node in model.graph.node for out in node.output}
    return sum(
        made_by.get(node.input[0]) == "BatchNormalization"
        for node in model.graph.node
        if node.op_type == "MaxPool"
    )


def _outputs(model_or_path, mel):
    session = runtime.onnxruntime().InferenceSession(
        model_or_path, providers=["CPUExecutionProvider"]
    )
    embeddings, activations = session.run(
        ["model/dense/BiasAdd:0", "model/Sigmoid:0"], {"model/Placeholder:0": mel}
    )
    return embeddings, activations


def test_a_backbone_twin_made_now_has_its_pools_first_and_gives_essentias_outputs(tmp_path):
    target = tmp_path / onnx.twin_name(BACKBONE_PB, onnx.sha256(BACKBONE_PB))
    job = onnx.Job(
        BACKBONE_PB, ["model/Placeholder"], ["model/dense/BiasAdd", "model/Sigmoid"], target
    )
    assert onnx.make_twins([job]) == {}
    model = onnx_pkg.load(str(target))
    assert _pools_after_a_norm(model) == 0
    assert onnx.pool_first(model) == 0  # nothing left to rewrite
    assert onnx.faster_graph(target) is None  # loaded as it is
    reference = np.load(REFERENCE)
    embeddings, activations = _outputs(str(target), reference["melspectrogram"])
    assert np.abs(embeddings - reference["embeddings"]).max() < 1e-4
    assert np.abs(activations - reference["activations"]).max() < 1e-4


def test_a_twin_made_before_is_rewritten_when_loaded_to_the_same_outputs(tmp_path):
    # A twin as the versions before pool_first made it: tf2onnx alone, in a process of
    # its own (TensorFlow cannot live beside Essentia).
    old = tmp_path / onnx.twin_name(BACKBONE_PB, onnx.sha256(BACKBONE_PB))
    script = (
        "import sys, tf2onnx; from tensorflow.core.framework import graph_pb2;"
        "g = graph_pb2.GraphDef(); g.ParseFromString(open(sys.argv[1], 'rb').read());"
        "m, _ = tf2onnx.convert.from_graph_def(g, input_names=['model/Placeholder:0'],"
        " output_names=['model/dense/BiasAdd:0', 'model/Sigmoid:0'], opset=17);"
        "open(sys.argv[2], 'wb').write(m.SerializeToString())"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", script, str(BACKBONE_PB), str(old)], env=env, check=True)
    assert _pools_after_a_norm(onnx_pkg.load(str(old))) == 5
    rewritten = onnx.faster_graph(old)
    assert rewritten is not None
    assert _pools_after_a_norm(onnx_pkg.load_from_string(rewritten)) == 0
    reference = np.load(REFERENCE)
    mel = reference["melspectrogram"]
    before, after = _outputs(str(old), mel), _outputs(rewritten, mel)
    for plain, fast in zip(before, after, strict=True):
        assert np.abs(plain - fast).max() < 1e-5
    # The session the catalog runs: the rewritten graph, Essentia's outputs.
    session = runtime.onnx_session(old, 1)
    embeddings = session.run(["model/dense/BiasAdd:0"], {"model/Placeholder:0": mel})[0]
    assert np.abs(embeddings - reference["embeddings"]).max() < 1e-4


def test_a_head_has_no_pools_and_is_left_as_it_is():
    head = next(h for h in get_catalog().heads if h.onnx is not None)
    assert onnx.faster_graph(head.onnx) is None
