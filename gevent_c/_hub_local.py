"""Per-thread hub state: ``_threadlocal.Hub``, the thread's hub class.

(The hub itself and a loop kept by ``Hub.destroy(destroy_loop=False)`` live
in the thread state dict, managed by the C module.)"""
from _thread import _local


class _Threadlocal(_local):
    def __init__(self):
        # each OS thread starts with the default Hub class
        _local.__init__(self)
        self.Hub = None


_threadlocal = _Threadlocal()
