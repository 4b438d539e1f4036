"""The one list of deepctr-ops' C++ and CUDA sources.

BUILD (Bazel, for linking the ops into tensorflow_model_server) loads these
lists; CMakeLists.txt (the pip build) reads them from this file too, so both
builds compile the same files. tests/ops/test_build_lists.py fails when a
source under cc/kernels or cc/ops is in none of the lists.
"""

# TF-free CPU kernels (built for AVX on x86-64; dynamic_gru_avx2/avx512 raise
# their own ISA with #pragma GCC target and run only where the CPU has it).
# (Those two include every library and shared header before their pragma, so
# the inline functions they emit keep the baseline target.)
KERNEL_SRCS = [
    "cc/kernels/attention_pool.cc",
    "cc/kernels/attention_softmax.cc",
    "cc/kernels/dynamic_gru.cc",
    "cc/kernels/dynamic_gru_avx2.cc",
    "cc/kernels/dynamic_gru_avx512.cc",
    "cc/kernels/dynamic_gru_emulate.cc",
    "cc/kernels/embedding_pool.cc",
    "cc/kernels/embedding_pool_emulate.cc",
    "cc/kernels/sequence_pool.cc",
]

# TF-free CUDA launchers (built when CUDA is enabled).
CUDA_SRCS = [
    "cc/kernels/attention_pool.cu",
    "cc/kernels/attention_softmax.cu",
    "cc/kernels/dynamic_gru.cu",
    "cc/kernels/embedding_pool.cu",
    "cc/kernels/sequence_pool.cu",
]

# TF op definitions and kernels (the only TF-dependent C++).
OP_SRCS = [
    "cc/ops/attention_pool_kernels.cc",
    "cc/ops/attention_pool_ops.cc",
    "cc/ops/attention_softmax_kernels.cc",
    "cc/ops/attention_softmax_ops.cc",
    "cc/ops/dynamic_gru_kernels.cc",
    "cc/ops/dynamic_gru_ops.cc",
    "cc/ops/embedding_pool_kernels.cc",
    "cc/ops/embedding_pool_ops.cc",
    "cc/ops/sequence_pool_kernels.cc",
    "cc/ops/sequence_pool_ops.cc",
]
