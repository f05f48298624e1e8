"""preempt.gevent.enable() in every process of gevent's suite, when PREEMPT_GEVENT_SUITE=1.

``run_gevent_tests.py`` puts this directory first on PYTHONPATH for its preempt children, so
every Python process a test starts (a script it runs with ``sys.executable``, a helper server)
has it too. What it does:

1. Nothing unless ``PREEMPT_GEVENT_SUITE=1``.
2. No import of gevent or preempt here: enable() imports ssl and threading, and a test's
   ``monkey.patch_all()`` warns (MonkeyPatchWarning) when ssl was imported before it. Instead it
   subscribes to gevent's own event (``zope.event``): when ``patch_all()`` has finished
   (``GeventDidPatchAllEvent``), on the main thread, it calls ``preempt.gevent.enable()``.
   A process that never patches is enabled by whoever runs it (``_child.py`` after importing
   the test file), or not at all (a plain helper script).
3. At exit it writes the bridge's count to ``$PREEMPT_GEVENT_SUITE_DIR/<pid>.json``; the parent
   sums them. Registered after enable() so that it runs before enable()'s own atexit disable().
"""

import os

if os.environ.get("PREEMPT_GEVENT_SUITE") == "1":
    def _preempt_suite_enable(event=None):
        if event is not None and type(event).__name__ != "GeventDidPatchAllEvent":
            return
        import threading
        if threading.current_thread() is not threading.main_thread():
            return
        import preempt.gevent
        if preempt.gevent.enabled():
            return
        preempt.gevent.enable(float(os.environ.get("PREEMPT_GEVENT_SUITE_SLICE", "0.010")))
        import atexit
        atexit.register(_preempt_suite_write)

    def _preempt_suite_write():
        import json
        import sys
        import preempt.gevent
        d = os.environ.get("PREEMPT_GEVENT_SUITE_DIR")
        if d:
            st = dict(preempt.gevent.stats(), argv=sys.argv[:3])
            with open(os.path.join(d, f"{os.getpid()}.json"), "w") as f:
                json.dump(st, f)

    try:
        import zope.event
    except ImportError:
        pass
    else:
        zope.event.subscribers.append(_preempt_suite_enable)
