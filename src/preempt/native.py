"""Registering native code as preemptible: ``preempt.preemptible(lib)``.

Go can stop Go code at almost any instruction because its compiler vouches, per PC, that doing so
is safe. For native code nobody vouches — except you. Registering a shared object tells preempt
that any instruction in its executable segments is an asynchronous safe-point.

.. warning::
   Register only code that is **reentrant and holds no lock across its hot loop**: a thread or
   goroutine stopped in the middle of it must not keep another from calling it. Pure compute
   kernels (numeric loops, hashing, compression of caller-owned buffers) qualify; code that
   calls malloc, stdio, locks, or keeps global state does not. Never register the C library,
   the loader, the interpreter or libraries you do not control — preempt refuses the first
   three outright. Code outside registered regions (including libc functions a registered
   library calls) is never interrupted; the request simply waits until control is back inside.

A registration lasts until :meth:`PreemptibleRegion.close`, not until the region object is
dropped: ``preempt.preemptible(lib)`` used as a statement, then calls on ``lib`` itself, is a
natural way to use it, and those calls must stay preempted. So every open region is kept in
``_open`` (and keeps its library object alive, so its code cannot be unloaded under the
registration) until it is closed; one dropped without ``close()`` stays registered for the
life of the process. (An alternative would be a finalizer that unregisters a dropped region,
as a file is closed. Rejected: the raw library's calls would stop being preempted at some later
garbage collection, silently, and at a moment nobody chose.)

Where these run: any thread (registering and closing take the core's region lock; the signal
handler reads the table without one, ``csrc/pe_regions.c``).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any, List, Set

from . import _corelib
from ._errors import PreemptError
from ._runtime._cancel import check_cancelled_after_native

__all__ = ["preemptible", "PreemptibleRegion"]

_ERRLEN = 512
_open: Set["PreemptibleRegion"] = set()   # every region not closed yet (module docstring)


class PreemptibleRegion:
    """The registration of one shared object's executable segments, and a proxy to its functions.

    ``region.fn(...)`` calls ``lib.fn(...)``. Unless the library was registered with
    ``reentrant=True``, calls made through the proxy from goroutines are serialised: one goroutine
    at a time is inside the library, others park on a goroutine-aware lock (a goroutine preempted
    in the middle of non-reentrant code must not let another one in). Outside ``preempt.run()``
    (plain threads) the proxy calls straight through. Direct calls on the raw library object are
    still preempted — the region is registered — but not serialised. A goroutine cancelled while
    it was parked inside a proxied call raises ``Cancelled`` as soon as the call returns; after a
    direct call, at its next checkpoint.

    Close it (or use ``with``) to unregister. Keeps the library object alive while open, so the
    code cannot be unloaded under a registration. Dropping it without ``close()`` does not
    unregister: preempt keeps it (and the library) until it is closed, which then never happens.
    """

    def __init__(self, lib: Any, name: str, ids: List[int], reentrant: bool = False) -> None:
        self._lib = lib
        self.name = name
        self._ids = ids
        self.reentrant = reentrant
        self._mutex: Any = None
        self._mutex_sched: Any = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        lib = self.__dict__.get("_lib")
        if lib is None:
            raise ValueError(f"{self!r} is closed")
        fn = getattr(lib, attr)
        if not callable(fn):
            return fn
        return _Serialised(self, fn)

    def _lock_for_current(self) -> Any:
        """The goroutine-aware lock of this run(), or None outside a goroutine."""
        from ._runtime import _park

        s = _park.sched
        if s is None or s.cur is None:
            return None
        if self._mutex is None or self._mutex_sched is not s:
            from .sync import Mutex

            self._mutex, self._mutex_sched = Mutex(), s
        return self._mutex

    @property
    def closed(self) -> bool:
        return not self._ids

    @property
    def segments(self) -> int:
        """Number of executable segments registered."""
        return len(self._ids)

    def close(self) -> None:
        """Unregisters the segments (idempotent)."""
        if not self._ids:
            return
        _, lib = _corelib.core()
        for i in self._ids:
            lib.pe_regions_remove(i)
        self._ids = []
        self._lib = None
        _open.discard(self)

    def __enter__(self) -> "PreemptibleRegion":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PreemptibleRegion {self.name!r} segments={len(self._ids)}{' closed' if self.closed else ''}>"


class _Serialised:
    """A library function called under the region's goroutine lock."""

    __slots__ = ("_region", "_fn", "__name__")

    def __init__(self, region: PreemptibleRegion, fn: Any) -> None:
        self._region = region
        self._fn = fn
        self.__name__ = getattr(fn, "__name__", "function")

    def __call__(self, *args: Any) -> Any:
        region = self._region
        mutex = None if region.reentrant else region._lock_for_current()
        if mutex is None:
            r = self._fn(*args)
        else:
            mutex.lock()
            try:
                r = self._fn(*args)
            finally:
                mutex.unlock()
        # a cancellation that came while the call was parked lands as the call returns
        check_cancelled_after_native()
        return r

    def __repr__(self) -> str:
        return f"<serialised {self._fn!r} of {self._region.name!r}>"


def _mark_transparent() -> None:
    # The proxy's frames are preempt's, which the preemption hook never interrupts (deny list);
    # they only call user-registered code, so the hook must look through them.
    from ._runtime import _preempt

    _preempt.register_transparent_code(_Serialised.__call__.__code__)


def preemptible(lib: Any, reentrant: bool = False) -> PreemptibleRegion:
    """Registers the executable segments of a loaded shared object as preemptible.

    Args:
        lib: the library, as a path (str or os.PathLike) of an already loaded object, a
            ``ctypes.CDLL``, a cffi compiled module or its ``lib``, or a library returned by
            cffi's ``ffi.dlopen``.
        reentrant: True when the library may be entered by several goroutines at once (it keeps
            no state between calls); False (the default) serialises goroutines' calls made
            through the returned proxy.

    Returns:
        A :class:`PreemptibleRegion`: call the library's functions through it
        (``region.fn(...)``); ``close()`` it (or use ``with``) to unregister. Dropping it does
        not unregister (the module docstring says why).

    Example::

        lib = ctypes.CDLL("./libkernels.so")
        kern = preempt.preemptible(lib)
        def worker():
            return kern.crunch(10**9)      # other goroutines keep running meanwhile
        preempt.run(lambda: [g.join() for g in [preempt.go(worker) for _ in range(4)]])

    Raises:
        ValueError: ``lib`` is not a loaded library, has no executable segment, or is one that
            may never be preempted (the C library, the loader, the interpreter, preempt itself).
        Unavailable: the C core is not available on this platform.
    """
    ffi, clib = _corelib.core()
    ids = ffi.new("int32_t[]", 64)
    err = ffi.new("char[]", _ERRLEN)
    if isinstance(lib, (str, bytes, os.PathLike)):
        path = os.fsdecode(lib)
        name = path
        if "/" not in path and not os.path.exists(path):
            # A soname such as "libm.so.6": find it among the loaded objects, never load it.
            try:
                loaded = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)
            except OSError:
                raise ValueError(f"'{path}' is not loaded in this process (load it first, e.g. "
                                 "with ctypes.CDLL)") from None
            n = clib.pe_regions_add_handle(ffi.cast("void *", loaded._handle), ids, 64, err, _ERRLEN)
        else:
            n = clib.pe_regions_add_path(os.fsencode(path), ids, 64, err, _ERRLEN)
    elif isinstance(lib, ctypes.CDLL):
        n = clib.pe_regions_add_handle(ffi.cast("void *", lib._handle or 0), ids, 64, err, _ERRLEN)
        name = lib._name
    else:
        addr, name = _cffi_address(lib)
        if addr is None:
            raise ValueError(f"preemptible() takes a path, a ctypes.CDLL or a cffi library; got {type(lib).__name__}")
        n = clib.pe_regions_add_address(addr, ids, 64, err, _ERRLEN)
    if n < 0:
        msg = ffi.string(err).decode(errors="replace")
        if n == clib.PE_FULL:
            raise PreemptError(msg)
        raise ValueError(msg)
    _mark_transparent()
    region = PreemptibleRegion(lib, str(name), [int(ids[i]) for i in range(n)], reentrant)
    _open.add(region)
    return region


def _cffi_address(lib: Any):
    """An address inside the object behind a cffi module, API-mode lib or ABI-mode lib."""
    mod_file = getattr(lib, "__file__", None)
    if isinstance(mod_file, str) and mod_file.endswith(".so"):
        return _cffi_address_from_module(lib)
    if type(lib).__name__ == "Lib" and type(lib).__module__ == "_cffi_backend":
        modname = getattr(lib, "__name__", "").rsplit(".", 1)[0]
        mod = sys.modules.get(modname)
        if mod is not None:
            return _cffi_address_from_module(mod)
    # ABI mode (ffi.dlopen): attributes are cdata function pointers.
    ffi, _ = _corelib.core()
    for attr in dir(lib):
        try:
            value = getattr(lib, attr)
        except Exception:
            continue
        if type(value).__name__ == "_CDataBase" or type(value).__module__ == "_cffi_backend":
            try:
                if ffi.typeof(value).kind == "function" or "(*)" in ffi.typeof(value).cname:
                    return int(ffi.cast("uintptr_t", value)), f"cffi library ({attr})"
            except Exception:
                continue
    return None, None


def _cffi_address_from_module(mod: Any):
    ffi, _ = _corelib.core()
    lib = getattr(mod, "lib", None)
    mffi = getattr(mod, "ffi", None)
    if lib is None or mffi is None:
        return None, None
    for attr in dir(lib):
        try:
            p = mffi.addressof(lib, attr)
        except Exception:
            continue
        if "(*)" in mffi.typeof(p).cname:
            return int(mffi.cast("uintptr_t", p)), mod.__file__
    return None, None
