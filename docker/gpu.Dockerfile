# Nomarr for NVIDIA GPUs: the image built from ../Dockerfile plus CUDA 11 and cuDNN 8,
# which essentia-tensorflow's TensorFlow 2.5 loads at run time (the host gives only the
# driver, through the NVIDIA container toolkit: `docker run --gpus all`).
#
#   docker build --network host -t nomarr .
#   docker build --network host -f docker/gpu.Dockerfile -t nomarr:gpu .
#
# Without a GPU it runs on the CPU like the plain image. What it changes: the models
# run on the GPU, batches are larger (NOMARR_BATCH_SIZE=64), the image is 3 GB bigger
# (the CUDA libraries; 4.15 GB in all).
ARG BASE=nomarr

FROM ${BASE} AS cuda
USER root
COPY docker/requirements-gpu.txt /tmp/
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-pip \
    && /usr/bin/python3 -m pip install --no-cache-dir --break-system-packages --require-hashes \
        --no-deps --target /opt/cuda -r /tmp/requirements-gpu.txt

FROM ${BASE}
COPY --from=cuda /opt/cuda/nvidia /opt/cuda/nvidia
ENV LD_LIBRARY_PATH=/opt/cuda/nvidia/cuda_runtime/lib:/opt/cuda/nvidia/cublas/lib:/opt/cuda/nvidia/cufft/lib:/opt/cuda/nvidia/curand/lib:/opt/cuda/nvidia/cusolver/lib:/opt/cuda/nvidia/cusparse/lib:/opt/cuda/nvidia/cudnn/lib:/opt/cuda/nvidia/cuda_nvrtc/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NOMARR_BATCH_SIZE=64
