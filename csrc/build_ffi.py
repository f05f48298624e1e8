"""cffi build script for preempt's C core (out-of-line, API mode).

cffi exec()s this file, so paths are built from __file__. The cdef is the block between the CDEF
markers of preempt.h: the header the C sources include is the one Python binds to, so the two
cannot drift apart.

Set PREEMPT_SANITIZE=1 to build with AddressSanitizer and UBSan (see scripts/test --sanitize).
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

SOURCES = [
    "pe_init.c",
    "pe_cpu.c",
    "pe_thread.c",
    "pe_suspend.c",
    "pe_async.c",
    "pe_signal.c",
    "pe_regions.c",
    "pe_python.c",
    "pe_pyoffsets.c",
    "pe_sysmon.c",
    "pe_wakeup.c",
    "pe_trampoline_amd64.c",
    "pe_bench.c",
]


def read_cdef() -> str:
    with open(os.path.join(HERE, "preempt.h")) as f:
        text = f.read()
    start = text.index("/* CDEF BEGIN */") + len("/* CDEF BEGIN */")
    end = text.index("/* CDEF END */")
    return text[start:end]


def compile_args() -> list:
    args = [
        "-std=gnu11",
        "-O2",
        "-g",
        "-Wall",
        "-Wextra",
        # a pointer truncated by an implicit declaration is a bug, never a warning
        "-Werror=implicit-function-declaration",
        "-fno-strict-aliasing",
    ]
    if os.environ.get("PREEMPT_NO_PRIVATE_LAYOUT"):   # test the newer-CPython fallback
        args.append("-DPE_NO_PRIVATE_LAYOUT")
    if os.environ.get("PREEMPT_WERROR"):       # scripts/test and CI; not a user's pip install
        args.append("-Werror")
    if os.environ.get("PREEMPT_SANITIZE"):
        args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    return args


ffibuilder = FFI()
ffibuilder.cdef(read_cdef())
# The runtime's async-preemption hook, implemented in Python (preempt/_runtime/_asynchook.py) and
# passed to pe_set_preempt_hook. cffi takes the GIL around it.
ffibuilder.cdef('extern "Python" int pe_py_async_preempt(int32_t slot);')
ffibuilder.set_source(
    "preempt._core",
    '#include "preempt.h"\n',
    sources=[os.path.relpath(os.path.join(HERE, s)) for s in SOURCES],
    include_dirs=[HERE],
    define_macros=[("_GNU_SOURCE", None), ("_CFFI_NO_LIMITED_API", None)],
    extra_compile_args=compile_args(),
    extra_link_args=["-fsanitize=address,undefined"] if os.environ.get("PREEMPT_SANITIZE") else [],
    libraries=["dl", "pthread"],
    # Not the stable ABI: the core reads the interpreter's attached thread state, whose accessor
    # differs per version (pe_python.c). One build per CPython version.
    py_limited_api=False,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
