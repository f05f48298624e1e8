"""Build script: the C core is a cffi out-of-line API-mode module (csrc/build_ffi.py).

Everything declarative lives in pyproject.toml; setup.py exists only because cffi_modules is a
setuptools keyword that pyproject cannot express yet.
"""
import platform
import sys

from setuptools import setup

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

setup(cffi_modules=["csrc/build_ffi.py:ffibuilder", "csrc/build_kernels.py:ffibuilder"] if _native else [])
