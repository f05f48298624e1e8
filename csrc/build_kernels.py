"""cffi build script for preempt._kernels: native demo/benchmark loops (csrc/kernels/).

A separate shared object on purpose: it is *registered* as preemptible by the demo and the
benchmarks, and the core refuses to register itself.
"""
import os

from cffi import FFI

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")


def read_cdef() -> str:
    with open(os.path.join(HERE, "pek.h")) as f:
        text = f.read()
    return text[text.index("/* CDEF BEGIN */") + 16:text.index("/* CDEF END */")]


ffibuilder = FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "preempt._kernels",
    '#include "pek.h"\n',
    sources=[os.path.relpath(os.path.join(HERE, "pek.c"))],
    include_dirs=[HERE],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra"]
    + (["-Werror"] if os.environ.get("PREEMPT_WERROR") else []),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
