"""Per-thread hub state: the thread's hub, its hub class and a saved loop."""
from _thread import _local


class _Threadlocal(_local):
    def __init__(self):
        # Each OS thread starts with no hub, the default Hub class and no
        # loop kept by an earlier Hub.destroy(destroy_loop=False).
        _local.__init__(self)
        self.Hub = None
        self.loop = None
        self.hub = None


_threadlocal = _Threadlocal()
