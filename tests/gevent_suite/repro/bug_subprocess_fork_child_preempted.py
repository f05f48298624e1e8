# Minimal: gevent.subprocess.Popen of a missing program under preempt.gevent.enable().
# Plainly every call raises FileNotFoundError; with enable() the fork child is sometimes
# preempted between fork() and exec(), runs the hub there, and the parent gets the child's
# SystemError "(libev) epoll_wait: Bad file descriptor" (or no error at all).
import os, sys, traceback
from gevent import monkey; monkey.patch_all()
import subprocess
import preempt.gevent, preempt.gevent as pg

parent = os.getpid()
orig = pg.may_switch
def may_switch(g, frame, locks_green):
    ok = orig(g, frame, locks_green)
    if ok and os.getpid() != parent:
        os.write(2, ("preempted in the fork child at:\n" + "".join(traceback.format_stack(frame)[-9:])).encode())
    return ok
pg.may_switch = may_switch
preempt.gevent.enable()
bad = 0
for i in range(200):
    try:
        subprocess.Popen('this_name_must_not_exist').wait()
        bad += 1
    except FileNotFoundError:
        pass
    except Exception as e:
        bad += 1
        print("got", repr(e))
print(bad, "of 200 wrong")
