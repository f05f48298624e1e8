"""Green sockets: the stdlib ``socket`` API, where a call that would block parks the goroutine.

``preempt.socket.socket`` is a subclass of the stdlib ``socket.socket``. To the goroutine that
calls it, it behaves as a blocking socket with the stdlib's timeouts (``settimeout``,
``setblocking``, the default timeout); underneath, the fd is always non-blocking, and a call
that would block parks the goroutine on the hub's epoll (``wait_readable``/``wait_writable``)
until the fd is ready or the timeout passes. Other goroutines run meanwhile. Example::

    from preempt import socket

    def fetch(host, port):
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            return s.makefile("rb").read()

Rules (tests refer to them by number):

1. Blocking semantics are the stdlib's: timeout None waits for ever, a timeout > 0 raises
   ``socket.timeout`` (``TimeoutError``) after that long per call (``sendall``: for the whole
   call, as the stdlib does since 3.5), timeout 0 raises ``BlockingIOError`` at once.
   ``gettimeout()``, ``getblocking()`` and ``timeout`` report what the program set, not the
   fd's real, non-blocking mode.
2. Outside a goroutine — another OS thread (an offload thread), outside ``run()``, the hub, a
   foreign greenlet — the same object blocks its thread, like a stdlib socket (``poll()`` on
   the fd with the timeout). So a socket may be handed between goroutines and threads.
3. Name resolution (``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr``,
   ``getnameinfo``) runs on the offload pool (``preempt.blocking``): the resolver's blocking
   calls never stall the M. Numeric addresses skip the pool. ``connect()``, ``connect_ex()``,
   ``sendto()`` and ``bind()`` of an (host, port) address whose host is a name resolve it that
   way first (the C socket would resolve it inline, blocking the M).
4. Closing a socket wakes every goroutine waiting on it with ``OSError(EBADF)``, the error a
   stdlib socket raises when used after ``close()`` (``notify_closing``). Never a hang.
5. One goroutine at a time may wait per socket and direction (``_runtime/_netpoll.py``,
   invariant 1): a second gets PreemptError naming the first. Two readers of one stream would
   race for its bytes; funnel the socket through one goroutine, or accept on it from one.
6. ``create_connection``, ``create_server``, ``socketpair``, ``fromfd`` and ``getfqdn`` are the
   stdlib's own functions, run with this module's ``socket`` class and resolver (their code
   object, our globals), so they match the running CPython's version exactly.
7. ``MSG_DONTWAIT`` in a call's flags is the kernel's: on a socket without a timeout the call
   raises ``BlockingIOError`` at once instead of parking, as the stdlib's does (with a timeout
   the stdlib waits for readiness first, and so does this). ``SOCK_NONBLOCK`` in the type makes
   the timeout 0.0, as the stdlib's constructor does.
8. An iterable argument (``recvmsg_into``'s and ``sendmsg``'s buffers, ``sendmsg``'s ancdata)
   is read once, into a list: a call that waits and retries sees the same items (a generator
   would be exhausted by the first try, and the retry would read 0 bytes: a false EOF).
9. The stdlib's argument checks and errors hold: a port out of 0-65535 in an address with a
   host name is ``OverflowError`` (the C call checks the port as given, after the name is
   resolved, as the stdlib's order is), never wrapped by the resolver; ``setblocking()`` on a
   closed socket raises ``OSError(EBADF)``.
10. A ``recv``/``recv_into`` without flags on a TCP socket that returned fewer bytes than asked
    for emptied the receive queue: the next one parks until the fd's next edge instead of
    asking the kernel first (``_runtime/_netpoll.py`` invariant 7: half the system calls of a
    keep-alive server's reads). What the caller sees is unchanged.

Everything else (constants, exceptions, ``inet_aton`` ...) is re-exported from the stdlib.

Where these run: any thread; the green paths on a goroutine, the blocking paths elsewhere.
"""

from __future__ import annotations

import errno as _errno
import os as _os
import select as _select
import socket as _std
import types as _types
from socket import *  # noqa: F401,F403  (constants and exceptions: the stdlib's API)
from threading import get_ident as _get_ident
from time import monotonic as _monotonic
from typing import Any, Optional

import _socket
from greenlet import getcurrent as _getcurrent

from ._runtime import _park
from ._runtime._netpoll import READ as _READ, WRITE as _WRITE
from .io import _park_fd

__all__ = list(_std.__all__)

_Base = _std.socket
_C = _socket.socket                     # the C type: its methods ignore our overrides
_poll = _select.poll                    # the originals, whatever patch() does later
_POLLIN, _POLLOUT = _select.POLLIN, _select.POLLOUT
_timeout_error = _std.timeout
_std_getaddrinfo = _std.getaddrinfo     # the stdlib's, before preempt.patch() replaces it


def _here() -> Any:
    """The scheduler when the caller is a goroutine running on its M, else None (rule 2)."""
    s = _park.sched
    if s is not None and s.ident == _get_ident():
        g = s.cur
        if g is not None and g.glet is _getcurrent():
            return s
    return None


def _wait(fd: int, event: int, deadline: Optional[float], owner: Any = None) -> None:
    """Waits until ``fd`` is ready for ``event`` or ``deadline`` (monotonic) passes. ``owner``,
    the socket whose fd it is, keeps it registered in the hub's epoll for its life; such a
    wait may return early (it was ready a moment ago): callers retry and wait again.

    Raises:
        socket.timeout: The deadline passed.
        OSError: EBADF, the socket was closed while the goroutine waited (rule 4).
    """
    timeout = None if deadline is None else max(0.0, deadline - _monotonic())
    s = _here()
    if s is not None:
        if not _park_fd(s, fd, event, timeout, owner):
            raise _timeout_error("timed out")
        return
    p = _poll()
    p.register(fd, _POLLIN if event == _READ else _POLLOUT)
    if not p.poll(None if timeout is None else timeout * 1000.0):
        raise _timeout_error("timed out")


def _is_numeric_host(host: Any) -> bool:
    if host is None or host == "":
        return True
    if isinstance(host, bytes):
        try:
            host = host.decode("idna")
        except UnicodeError:
            return False
    if not isinstance(host, str):
        return False
    h = host.split("%", 1)[0]           # an IPv6 scope id
    for af in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(af, h)
            return True
        except (OSError, ValueError):
            pass
    return False


def _resolve(fn: Any, *args: Any) -> Any:
    """Runs a resolver call on the offload pool from a goroutine, inline elsewhere (rule 3)."""
    if _here() is None:
        return fn(*args)
    from .offload import blocking

    return blocking(fn, *args)


def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                flags: int = 0) -> list:
    """The stdlib's ``getaddrinfo``; from a goroutine a name is resolved on the offload pool."""
    if _is_numeric_host(host):
        return _std_getaddrinfo(host, port, family, type, proto, flags)
    return _resolve(_std_getaddrinfo, host, port, family, type, proto, flags)


def gethostbyname(hostname: str) -> str:
    """The stdlib's ``gethostbyname``, resolved off the M (rule 3)."""
    if _is_numeric_host(hostname) and ":" not in str(hostname):
        return _socket.gethostbyname(hostname)
    return _resolve(_socket.gethostbyname, hostname)


def gethostbyname_ex(hostname: str) -> tuple:
    """The stdlib's ``gethostbyname_ex``, resolved off the M (rule 3)."""
    return _resolve(_socket.gethostbyname_ex, hostname)


def gethostbyaddr(ip_address: str) -> tuple:
    """The stdlib's ``gethostbyaddr``, resolved off the M (rule 3)."""
    return _resolve(_socket.gethostbyaddr, ip_address)


def getnameinfo(sockaddr: tuple, flags: int) -> tuple:
    """The stdlib's ``getnameinfo``, resolved off the M (rule 3)."""
    return _resolve(_socket.getnameinfo, sockaddr, flags)


_MSG_DONTWAIT = getattr(_socket, "MSG_DONTWAIT", 0)
_IPPROTO_TCP = _socket.IPPROTO_TCP


def _nowait(flags: Any) -> bool:
    """Whether a call's ``flags`` hold MSG_DONTWAIT (rule 7); not an int: the C call says."""
    return isinstance(flags, int) and bool(flags & _MSG_DONTWAIT)


def _nowait_at(args: tuple, i: int) -> bool:
    """:func:`_nowait` for the flags at ``args[i]``, when given."""
    return len(args) > i and _nowait(args[i])


def _once(items: Any) -> Any:
    """An iterable argument (``recvmsg_into``'s buffers, ``sendmsg``'s) as a list, so that the
    retry after a wait sees the same items (rule 8). Not iterable: as is, for the C call's own
    TypeError."""
    if isinstance(items, (list, tuple)):
        return items
    try:
        it = iter(items)
    except TypeError:
        return items
    return list(it)


def _resolved(sock: "socket", address: Any) -> Any:
    """``address`` with a host name resolved through :func:`getaddrinfo` (rule 3).

    The port is handed on as given, not through getaddrinfo (which wraps 70000 to 4464): the C
    call checks it as the stdlib's does, ``OverflowError`` out of 0-65535 (rule 9). A port that
    is not an int leaves the address as it is: the C call raises the stdlib's TypeError before
    it resolves anything."""
    if (sock.family in (_socket.AF_INET, _socket.AF_INET6) and isinstance(address, tuple)
            and len(address) >= 2 and not _is_numeric_host(address[0])):
        host, port = address[0], address[1]
        if not isinstance(port, int):
            return address
        infos = getaddrinfo(host, 0, sock.family, sock.type, sock.proto)
        if not infos:
            raise _std.gaierror(_socket.EAI_NONAME, "Name or service not known")
        sa = infos[0][4]
        return (sa[0], port) + tuple(sa[2:] if len(address) == 2 else address[2:])
    return address


class socket(_Base):
    """A stdlib ``socket.socket`` that parks the calling goroutine instead of blocking the M.

    Same constructor and methods as the stdlib's (module docstring, rules 1-5).
    """

    __slots__ = ("_ptimeout", "_pst")

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1,
                 fileno: Optional[int] = None) -> None:
        super().__init__(family, type, proto, fileno)
        # what the C socket chose: the default timeout, or 0.0 for SOCK_NONBLOCK in ``type``
        self._ptimeout: Optional[float] = _C.gettimeout(self)
        _C.settimeout(self, 0.0)
        # rule 10: the poller's kept record of this fd once a wait registered it; False for
        # sockets the rule does not apply to; None until known
        self._pst: Any = None

    # -- rule 1: the timeout the program sees ------------------------------------------------

    def settimeout(self, value: Optional[float]) -> None:
        """As the stdlib's; the fd itself stays non-blocking."""
        _C.settimeout(self, value)      # the stdlib's checks and errors, exactly
        self._ptimeout = _C.gettimeout(self)
        _C.settimeout(self, 0.0)

    def gettimeout(self) -> Optional[float]:
        return self._ptimeout

    def setblocking(self, flag: bool) -> None:
        _C.setblocking(self, False)     # the stdlib's errors (EBADF once closed), fd unchanged
        self._ptimeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._ptimeout != 0.0

    @property
    def timeout(self) -> Optional[float]:  # type: ignore[override]
        return self._ptimeout

    # -- the blocking calls ------------------------------------------------------------------

    def _io(self, fn: Any, event: int, *args: Any, nowait: bool = False) -> Any:
        t = self._ptimeout
        deadline = None
        while True:
            try:
                return fn(self, *args)
            except BlockingIOError:
                if t == 0.0 or (t is None and nowait):
                    raise                # rule 7: the kernel's answer, as for a blocking fd
            if deadline is None and t is not None:
                deadline = _monotonic() + t
            _wait(self.fileno(), event, deadline, self)

    def _read(self, fn: Any, want: int, *args: Any) -> Any:
        """``recv``/``recv_into`` without flags (rule 10): ``want`` bytes asked for (0: not
        known, never marks). What :meth:`_io` does for them, plus the short-read mark."""
        t = self._ptimeout
        st = self._pst
        deadline = None
        if st and st.dry and t != 0.0:       # emptied, and no edge since: wait for one
            if t is not None:
                deadline = _monotonic() + t
            _wait(self.fileno(), _READ, deadline, self)
        while True:
            try:
                r = fn(self, *args)
            except BlockingIOError:
                if t == 0.0:
                    raise                    # rule 7: the kernel's answer
            else:
                if st and not st.nodry:
                    n = r if type(r) is int else len(r)
                    if 0 < n < want:         # the queue is empty: invariant 7
                        st.dry = True
                        st.ready &= ~_READ   # an edge polled before the read: its bytes are read
                return r
            if deadline is None and t is not None:
                deadline = _monotonic() + t
            _wait(self.fileno(), _READ, deadline, self)
            if st is None:
                st = self._pst = self._kept_state()

    def _kept_state(self) -> Any:
        """This socket's record in its goroutine's poller (rule 10) once a wait has made it:
        False for a socket rule 10 does not apply to (only TCP's short read means "empty"),
        None when not known yet."""
        if (self.family not in (_socket.AF_INET, _socket.AF_INET6)
                or self.type != _socket.SOCK_STREAM or self.proto not in (0, _IPPROTO_TCP)):
            return False
        s = _here()
        if s is None:
            return None
        st = s.poller.fds.get(self.fileno())
        if st is None or st.owner is None or st.owner() is not self:
            return None
        return st

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags or type(bufsize) is not int:
            return self._io(_C.recv, _READ, bufsize, flags, nowait=_nowait(flags))
        return self._read(_C.recv, bufsize, bufsize)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if flags or type(nbytes) is not int:
            return self._io(_C.recv_into, _READ, buffer, nbytes, flags, nowait=_nowait(flags))
        want = nbytes
        if not want:                         # the buffer's size in bytes, where cheap to know
            tb = type(buffer)
            want = (buffer.nbytes if tb is memoryview
                    else len(buffer) if tb is bytearray else 0)
        return self._read(_C.recv_into, want, buffer, nbytes)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple:
        return self._io(_C.recvfrom, _READ, bufsize, flags, nowait=_nowait(flags))

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple:
        return self._io(_C.recvfrom_into, _READ, buffer, nbytes, flags, nowait=_nowait(flags))

    def recvmsg(self, *args: Any) -> tuple:
        return self._io(_C.recvmsg, _READ, *args, nowait=_nowait_at(args, 2))

    def recvmsg_into(self, buffers: Any, *args: Any) -> tuple:
        # rule 8: a retry after a wait must see the same buffers, not an exhausted iterator
        return self._io(_C.recvmsg_into, _READ, _once(buffers), *args,
                        nowait=_nowait_at(args, 1))

    def send(self, data: Any, flags: int = 0) -> int:
        return self._io(_C.send, _WRITE, data, flags, nowait=_nowait(flags))

    def sendto(self, data: Any, *args: Any) -> int:
        # sendto(data, address) or sendto(data, flags, address), told apart by the count as
        # the stdlib does: sendto(b"x", 0, None) must get the stdlib's TypeError about None
        if len(args) == 1:
            return self._io(_C.sendto, _WRITE, data, _resolved(self, args[0]))
        if len(args) != 2:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
        flags, address = args
        return self._io(_C.sendto, _WRITE, data, flags, _resolved(self, address),
                        nowait=_nowait(flags))

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        if args:            # ancdata: an iterable too (rule 8)
            args = (_once(args[0]),) + args[1:]
        return self._io(_C.sendmsg, _WRITE, _once(buffers), *args, nowait=_nowait_at(args, 1))

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Sends all of ``data``; the timeout bounds the whole call (rule 1)."""
        t = self._ptimeout
        deadline = None if t is None else _monotonic() + t
        off, blocked = 0, False
        if type(data) is bytes:         # the common case: one send(), no memoryview
            try:
                off = _C.send(self, data, flags)
            except BlockingIOError:
                if t == 0.0 or (t is None and _nowait(flags)):
                    raise               # rule 7
                blocked = True
            else:
                if off == len(data):
                    return
        with memoryview(data) as view, view.cast("B") as b:
            n = len(b)
            while off < n:
                if blocked:
                    _wait(self.fileno(), _WRITE, deadline, self)
                try:
                    off += _C.send(self, b[off:], flags)
                    blocked = False
                except BlockingIOError:
                    if t == 0.0 or (t is None and _nowait(flags)):
                        raise           # rule 7
                    blocked = True

    def accept(self) -> tuple:
        """As the stdlib's; the new socket is a ``preempt.socket.socket`` too."""
        fd, addr = self._io(_C._accept, _READ)
        sock = socket(self.family, self.type, self.proto, fileno=fd)   # as the stdlib: not
        # type(self), which for an SSLSocket has no public constructor
        if _std.getdefaulttimeout() is None and self._ptimeout:
            sock.setblocking(True)
        return sock, addr

    def connect(self, address: Any) -> None:
        err = self._connect(address)
        if err:
            if err == _errno.ETIMEDOUT and self._ptimeout:
                raise _timeout_error("timed out")
            raise OSError(err, _os.strerror(err))

    def connect_ex(self, address: Any) -> int:
        try:
            return self._connect(address)
        except _timeout_error:
            return _errno.EAGAIN

    def _connect(self, address: Any) -> int:
        address = _resolved(self, address)
        err = _C.connect_ex(self, address)
        if err not in (_errno.EINPROGRESS, _errno.EAGAIN, _errno.EWOULDBLOCK):
            return err
        t = self._ptimeout
        if t == 0.0:
            return err
        if err == _errno.EAGAIN and self.family == _socket.AF_UNIX:
            # a full listen backlog: a blocking connect() waits for room; retry when writable
            deadline = None if t is None else _monotonic() + t
            while err == _errno.EAGAIN:
                _wait(self.fileno(), _WRITE, deadline, self)
                err = _C.connect_ex(self, address)
            return err
        # no owner: SO_ERROR is read once, so this wait must mean "connected or failed", never
        # "maybe" (an owned wait may return on an old edge)
        _wait(self.fileno(), _WRITE, None if t is None else _monotonic() + t)
        return self.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)

    def bind(self, address: Any) -> None:
        _C.bind(self, _resolved(self, address))

    def _sendfile_use_sendfile(self, file: Any, offset: int = 0,
                               count: Optional[int] = None) -> int:
        # The stdlib's, with the selector wait replaced by the goroutine's (it would block the M).
        self._check_sendfile_params(file, offset, count)
        sockno = self.fileno()
        try:
            fileno = file.fileno()
            fsize = _os.fstat(fileno).st_size
        except (AttributeError, OSError, ValueError) as err:
            raise _std._GiveupOnSendfile(err)  # type: ignore[attr-defined]
        if not fsize:
            return 0
        blocksize = min(count or fsize, 2 ** 30)
        t = self._ptimeout
        if t == 0:
            raise ValueError("non-blocking sockets are not supported")
        total = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total, blocksize)
                    if blocksize <= 0:
                        break
                try:
                    sent = _os.sendfile(sockno, fileno, offset, blocksize)
                except BlockingIOError:
                    _wait(sockno, _WRITE, None if t is None else _monotonic() + t)
                    continue
                except OSError as err:
                    if total == 0:
                        raise _std._GiveupOnSendfile(err)  # type: ignore[attr-defined]
                    raise err from None
                if sent == 0:
                    break
                offset += sent
                total += sent
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset)

    def _real_close(self, _ss: Any = _C) -> None:
        s = _here()
        if s is not None:
            fd = _C.fileno(self)
            if fd >= 0:
                s.poller.notify_closing(fd)       # rule 4
        _ss.close(self)


SocketType = socket


def _stdlib_function(name: str) -> Any:
    """The stdlib's function ``name`` with this module's globals (rule 6)."""
    f = getattr(_std, name)
    g = dict(vars(_std))
    g.update(socket=socket, SocketType=socket, getaddrinfo=getaddrinfo,
             gethostbyaddr=gethostbyaddr, gethostbyname=gethostbyname)
    nf = _types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
    nf.__kwdefaults__ = f.__kwdefaults__
    nf.__doc__ = f.__doc__
    nf.__qualname__ = f.__qualname__
    nf.__module__ = __name__
    return nf


create_connection = _stdlib_function("create_connection")
create_server = _stdlib_function("create_server")
socketpair = _stdlib_function("socketpair")
fromfd = _stdlib_function("fromfd")
getfqdn = _stdlib_function("getfqdn")
