"""Write a taught tag's classifier as a frozen TensorFlow graph, an Essentia head.

The graph is what Essentia's TensorflowPredict2D runs on a backbone's per-patch
embeddings: `model/Placeholder` [batch, dims] -> `model/dense/BiasAdd` (the logits
[z, 0], z = weights . embedding + bias) -> `model/Softmax` [batch, 2], which is
[sigmoid(z), 1 - sigmoid(z)]: the classifier's probability of the tag and of its
opposite, in the order of the sidecar's classes.

This module imports `tensorflow`, which cannot live in a process that imported
Essentia (both register the same ops and abort), so it runs as its own process:
`python -m teach.export WEIGHTS.npz OUT.pb`, started by teach/heads.py. It needs no
Django (nomarr_site.atomic imports none).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nomarr_site.atomic import write_atomically

INPUT = "model/Placeholder"
LOGITS = "model/dense/BiasAdd"
PREDICTIONS = "model/Softmax"


def frozen_graph(weights, bias: float) -> bytes:
    """A serialized GraphDef computing PREDICTIONS from INPUT with these weights."""
    import numpy as np
    import tensorflow as tf

    weights = np.asarray(weights, dtype=np.float32)
    kernel = np.zeros((len(weights), 2), dtype=np.float32)
    kernel[:, 0] = weights
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=[None, len(weights)], name=INPUT)
        w = tf.constant(kernel, name="model/dense/kernel")
        b = tf.constant(np.array([bias, 0.0], dtype=np.float32), name="model/dense/bias")
        logits = tf.nn.bias_add(tf.linalg.matmul(x, w, name="model/dense/MatMul"), b, name=LOGITS)
        tf.nn.softmax(logits, name=PREDICTIONS)
    graph_def = graph.as_graph_def()
    for node in graph_def.node:
        # Attributes newer TensorFlow adds and the one in essentia-tensorflow does not know.
        for name in ("grad_a", "grad_b"):
            node.attr.pop(name, None)
    return graph_def.SerializeToString()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m teach.export WEIGHTS.npz OUT.pb", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    data = np.load(argv[0])
    write_atomically(Path(argv[1]), frozen_graph(data["weights"], float(data["bias"])))
    print(f"wrote {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
