"""Import Essentia once, with TensorFlow set up the way Nomarr needs it.

TensorFlow reads its GPU settings when it first loads, so they are set here,
before Essentia (which bundles TensorFlow) is imported. On a machine with a GPU
the models run on it with memory grown on demand; without one they run on the
CPU. Nothing else in Nomarr imports essentia directly.
"""

import os
from types import ModuleType

_TF_ENV = {
    # Take GPU memory as needed instead of all of it at start (the original Nomarr did this).
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    # Give the GPU its own launch threads so CPU-side work does not starve it.
    "TF_GPU_THREAD_MODE": "gpu_private",
    # TensorFlow's start-up chatter (and a harmless "grad_a" complaint from the
    # zoo heads) is noise in a server log; real failures still raise in Python.
    "TF_CPP_MIN_LOG_LEVEL": "3",
}

_essentia: ModuleType | None = None


def essentia() -> ModuleType:
    global _essentia
    if _essentia is None:
        for key, value in _TF_ENV.items():
            os.environ.setdefault(key, value)
        import essentia as module

        module.log.infoActive = False
        module.log.warningActive = False
        _essentia = module
    return _essentia


def essentia_standard() -> ModuleType:
    essentia()
    import essentia.standard as standard

    return standard
