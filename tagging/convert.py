"""Turn the musicnn package's TensorFlow 1 checkpoints into Essentia model files.

PyPI's `musicnn` ships the real weights of Essentia's `msd-musicnn-1` and
`mtt-musicnn-1` as training checkpoints. Essentia wants a frozen graph with the
sidecar `.json` it documents, so we import the `.meta` without its training nodes
and `_output_shapes`, turn every variable into a constant read from the
checkpoint, and pin the `is_training` placeholder to False.

This module imports `tensorflow`, which cannot live in the same process as
Essentia's bundled TensorFlow (both register the same ops and abort). So it runs
as its own process: `python -m tagging.convert OUT_DIR`, started by
`manage.py install_models`. It needs no Django (nomarr_site.atomic imports none).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from nomarr_site.atomic import write_atomically

INPUT = "model/Placeholder"
IS_TRAINING = "model/Placeholder_2"
PREDICTIONS = "model/Sigmoid"
EMBEDDINGS = "model/dense/BiasAdd"

# Output order of musicnn's two heads, as in musicnn/configuration.py and Essentia's sidecars.
MSD_LABELS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
]  # fmt: skip
MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
]  # fmt: skip

# model file stem -> (checkpoint folder in the musicnn package, dataset, labels)
MODELS = {
    "msd-musicnn-1": ("MSD_musicnn", "Million Song Dataset", MSD_LABELS),
    "mtt-musicnn-1": ("MTT_musicnn", "MagnaTagATune", MTT_LABELS),
}


def sidecar(stem: str) -> dict:
    """The Essentia model-zoo sidecar for one converted backbone."""
    folder, dataset, labels = MODELS[stem]
    return {
        "name": f"MusiCNN {dataset}",
        "type": "auto-tagging",
        "link": f"https://essentia.upf.edu/models/autotagging/{stem.split('-')[0]}/{stem}.pb",
        "version": "1",
        "description": f"Prediction of the top-50 tags of the {dataset}",
        "author": "Pablo Alonso",
        "email": "pablo.alonso@upf.edu",
        "release_date": "2020-03-31",
        "framework": "tensorflow",
        "framework_version": "1.15.0",
        "classes": list(labels),
        "model_types": ["frozen_model"],
        "dataset": {"name": dataset, "citation": "", "size": "", "metrics": {}},
        "schema": {
            "inputs": [{"name": INPUT, "type": "float", "shape": [187, 96]}],
            "outputs": [
                {
                    "name": PREDICTIONS,
                    "type": "float",
                    "shape": [1, len(labels)],
                    "op": "Sigmoid",
                    "output_purpose": "predictions",
                },
                {
                    "name": EMBEDDINGS,
                    "type": "float",
                    "shape": [1, 200],
                    "op": "fully connected",
                    "description": "penultimate layer",
                    "output_purpose": "embeddings",
                },
            ],
        },
        "citation": "",
        "inference": {"sample_rate": 16000, "algorithm": "TensorflowPredictMusiCNN"},
        "converted_by": "nomarr install_models from the musicnn==0.1.0 checkpoint " + folder,
    }


def freeze_checkpoint(checkpoint_dir: Path) -> bytes:
    """A serialized frozen GraphDef computing PREDICTIONS and EMBEDDINGS from INPUT."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((checkpoint_dir / ".meta").read_bytes())
    graph = meta.graph_def
    for node in graph.node:
        # Shapes recorded at training time contradict the graph once imported anew.
        node.attr.pop("_output_shapes", None)
    graph = tf.compat.v1.graph_util.extract_sub_graph(graph, [PREDICTIONS, EMBEDDINGS])

    # The checkpoint files are named ".index" and ".data-*": their prefix is the folder itself.
    reader = tf.compat.v1.train.NewCheckpointReader(str(checkpoint_dir) + "/")
    frozen = graph_pb2.GraphDef()
    frozen.versions.CopyFrom(graph.versions)
    for node in graph.node:
        out = frozen.node.add()
        if node.op in ("VariableV2", "Variable"):
            value = reader.get_tensor(node.name)
            out.name, out.op = node.name, "Const"
            out.attr["dtype"].type = node.attr["dtype"].type
            out.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        elif node.name == IS_TRAINING:
            out.name, out.op = node.name, "Const"
            out.attr["dtype"].type = tf.bool.as_datatype_enum
            out.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array(False)))
        else:
            out.CopyFrom(node)
            out.device = ""
    # Nothing may still depend on training-time state.
    leftover = {n.op for n in frozen.node} & {"VariableV2", "Assign", "ApplyAdam"}
    if leftover:
        raise RuntimeError(f"frozen graph still holds {sorted(leftover)}")
    return frozen.SerializeToString()


def convert_all(out_dir: Path) -> list[str]:
    """Convert every backbone that is not already in out_dir; returns the stems written."""
    import musicnn

    package = Path(musicnn.__file__).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, (folder, _dataset, _labels) in MODELS.items():
        pb, js = out_dir / f"{stem}.pb", out_dir / f"{stem}.json"
        if pb.exists() and js.exists():
            continue
        data = freeze_checkpoint(package / folder)
        # The .pb lands first: a model counts as installed only once its sidecar is there.
        write_atomically(pb, data)
        write_atomically(js, json.dumps(sidecar(stem), indent=2).encode())
        written.append(stem)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tagging.convert OUT_DIR", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for stem in convert_all(Path(argv[0])):
        print(f"converted {stem}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
