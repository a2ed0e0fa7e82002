"""The untrusted host, in the user's process (installed as ``bolt.host``).

:mod:`bolt.host.backend` is ``bolt.Map(backend="rtl")``: it starts the accelerator's simulation
in a child process and serves the accelerator's host-memory port from a
:class:`bolt.trace.HostMemory` in this process. Nothing here runs inside the simulator; that is
:mod:`bolt.sim`.
"""
