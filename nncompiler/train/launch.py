"""`nnc run FILE.nn --nproc N`: N ranks on this machine, reachable from nowhere else.

torchrun's `--standalone` mode would do, but its rendezvous store (a c10d TCPStore, which
has no authentication) listens on every interface, and it starts ranks as `python -m`,
which puts the working directory first on `sys.path` (a `torch.py` there would be
imported by every rank). So this launcher does the little torchrun did for us itself:

* the store is served from this process on a socket bound to 127.0.0.1 (handed to the
  TCPStore as `master_listen_fd`), and the ranks join it as clients, as torchrun's agent
  store is joined (`TORCHELASTIC_USE_AGENT_STORE`);
* the collectives (gloo, NCCL's bootstrap) are told to use the loopback interface;
* each rank is `python -P -m nncompiler ARGV` with `PYTHONSAFEPATH=1` and nncompiler's own
  absolute folder on `PYTHONPATH`: no implicit current directory on `sys.path`;
* a rank that fails stops the others, and the run fails with one NNCError naming it.

Several machines are torchrun's job, with an explicit address (docs/distributed.md).
"""
from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import time

from ..errors import NNCError

LOOPBACK = "127.0.0.1"
STOP_GRACE_S = 5.0   # how long the other ranks get to stop after one failed


def loopback_interface() -> str:
    """The name of the loopback interface (`lo` on Linux, `lo0` on macOS and the BSDs)."""
    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in ("lo", "lo0") if n in names), "lo")


def rank_env(rank: int, nproc: int, port: int, root: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0", "ROLE_RANK": str(rank),
        "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc), "ROLE_WORLD_SIZE": str(nproc),
        "MASTER_ADDR": LOOPBACK, "MASTER_PORT": str(port),
        "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "0",
        "GLOO_SOCKET_IFNAME": loopback_interface(), "NCCL_SOCKET_IFNAME": loopback_interface(),
        "PYTHONSAFEPATH": "1",
        "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]),
    })
    # one thread pool per core, not N ranks each as wide as the machine
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env


def _serve_store(nproc: int):
    """A TCPStore server on 127.0.0.1 only: (store, port). The socket is bound here because
    the TCPStore binds every interface when it opens its own."""
    try:
        import torch.distributed as dist
    except ImportError:
        raise NNCError("--nproc needs torch (torch.distributed): pip install torch") from None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(max(16, nproc * 4))
    port = listener.getsockname()[1]
    from .distributed import timeout_s
    # the store owns the socket from here on (it closes it when it goes away)
    store = dist.TCPStore(LOOPBACK, port, None, True, datetime.timedelta(seconds=timeout_s()),
                          wait_for_workers=False, master_listen_fd=listener.detach())
    return store, port


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _stop(procs, sig=signal.SIGTERM) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch_local(nproc: int, argv: list[str]) -> int:
    """Run `python -P -m nncompiler ARGV` (without `--nproc`) as N ranks; 0 when all succeed."""
    from .distributed import _nproc_flag
    args = [a for i, a in enumerate(argv) if not _nproc_flag(argv, i)]  # the ranks must not relaunch
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    store, port = _serve_store(nproc)
    cmd = [sys.executable, "-P", "-m", "nncompiler", *args]
    procs: list[subprocess.Popen] = []
    terminated = []
    try:   # SIGTERM is forwarded to the ranks, which save and stop (exit 143)
        previous = signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))
    except ValueError:   # not the main thread: signals stay as they are
        previous = None
    try:
        procs = [subprocess.Popen(cmd, env=rank_env(r, nproc, port, root)) for r in range(nproc)]
        while True:
            if terminated:
                _stop(procs)
                raise KeyboardInterrupt
            codes = [p.poll() for p in procs]
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank, code = failed[0]
                _stop(procs)
                raise NNCError(f"nnc run --nproc {nproc}: rank {rank} failed ({_how(code)}); "
                               f"the other ranks were stopped")
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.05)
    except KeyboardInterrupt:
        _stop(procs, signal.SIGINT)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        del store
