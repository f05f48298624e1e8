"""Build script: the C core is a cffi out-of-line API-mode module (csrc/build_ffi.py).

Everything declarative lives in pyproject.toml; setup.py exists only because cffi_modules is a
setuptools keyword that pyproject cannot express yet.
"""
import glob
import os
import platform
import sys

from setuptools import Extension, setup

# The core needs Linux x86-64 and a GIL-enabled CPython. Elsewhere the package installs as pure
# Python: `import preempt` works and preempt.available() says why preemption is off.
_native = (
    sys.platform.startswith("linux")
    and platform.machine() in ("x86_64", "AMD64")
    and sys.implementation.name == "cpython"
)
try:
    import sysconfig

    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        _native = False
except Exception:  # pragma: no cover
    pass

# preempt._gstack: small per-goroutine frame stacks on CPython 3.11+ (csrc/pe_gstack.c). A plain
# C-API extension, not cffi: it must be a callable that runs before any Python frame exists in a
# new greenlet. Optional at build time for a user (a CPython whose layout it does not know still
# installs; required in our own builds, see _require) and at run time: without it goroutines use CPython's own chunks.
_san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=undefined"] if os.environ.get("PREEMPT_SANITIZE") else []
# Warnings are errors in our own builds (scripts/test and CI set PREEMPT_WERROR=1), never in a
# user's `pip install`: a new compiler's or CPython's new warning must not break an install.
_werror = ["-Werror"] if os.environ.get("PREEMPT_WERROR") else []
# Our own builds (scripts/install-fresh, used by scripts/test, scripts/bench, scripts/py314 and
# scripts/valgrind-core) set PREEMPT_REQUIRE_NATIVE=1: there every extension is required, so a C
# source that does not compile fails the build instead of leaving the module out (or, with an
# earlier build/ present, packaging the stale .so from it) and passing on an old install.
_require = bool(os.environ.get("PREEMPT_REQUIRE_NATIVE"))
if _require and not _native:
    sys.exit("PREEMPT_REQUIRE_NATIVE is set, but this interpreter or platform builds no C core "
             "(Linux x86-64 GIL-enabled CPython only): unset it to install pure Python")
_gstack = Extension("preempt._gstack", ["csrc/pe_gstack.c"],
                    extra_compile_args=["-O2", "-g", "-Wall", "-Wextra", "-std=gnu11"] + _werror + _san,
                    extra_link_args=_san[:1], optional=not _require)

# preempt._hot: the channel hand-off path in C (csrc/pe_hot.c, which #includes its parts in
# csrc/hot/: one translation unit); optional like _gstack.
_hot = Extension("preempt._hot", ["csrc/pe_hot.c"], depends=sorted(glob.glob("csrc/hot/*")),
                 extra_compile_args=["-O2", "-g", "-Wall", "-Wextra", "-std=gnu11"] + _werror + _san,
                 extra_link_args=_san[:1], optional=not _require)

# preempt._kernels: the demo native loops that tests and benchmarks register as preemptible
# (csrc/kernels/). Built only for them (PREEMPT_KERNELS=1, set by scripts/install-fresh): a
# user's `pip install` gets the runtime alone.
_cffi = ["csrc/build_ffi.py:ffibuilder"]
if os.environ.get("PREEMPT_KERNELS"):
    _cffi.append("csrc/build_kernels.py:ffibuilder")

setup(cffi_modules=_cffi if _native else [],
      ext_modules=[_gstack, _hot] if _native else [])
