"""Measure that a YOLO run waits on no network: import, build, train, evaluate, with a guard
that records every attempt to reach a non-local host.

Two network conditions are simulated in-process (nothing real is contacted either way):

* ``refuse``: every DNS lookup or connect to a non-local host fails at once (a machine
  without a network interface, or a resolver that answers "no such host");
* ``blackhole``: DNS answers (with a TEST-NET address) but connections never complete, as on
  a firewalled network that drops packets: a connect waits for its own timeout, or
  ``--hang`` seconds when it has none. Any code path that touches the network shows up in the
  wall time as well as in the attempt list;
* ``observe``: attempts are recorded and go to the real network (on a machine that really is
  offline, this measures what the attempts cost there).

Run in a fresh interpreter, so that import-time checks (Ultralytics' ``is_online()``) are
measured too::

    python benchmarks/ultralytics_offline.py --mode blackhole --json

Prints the wall time of each stage and every attempt with the first caller outside the
standard library and HTTP clients. The test ``tests/test_ultralytics_plugin.py::test_offline``
runs it and asserts zero attempts.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

#: Frames from these paths are skipped when naming who made an attempt.
_PLUMBING = ("/socket.py", "/ssl.py", "/http/", "/urllib/", "/urllib3/", "/requests/", "/ultralytics_offline.py")


def _is_local(host: Any) -> bool:
    if host is None:
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text in ("localhost", "", "0.0.0.0"):
        return True
    try:
        return ipaddress.ip_address(text.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Intercepts ``socket.getaddrinfo``, ``connect``/``connect_ex`` and ``create_connection``.

    Args:
        mode: ``refuse`` or ``blackhole`` (see the module docstring).
        hang: seconds a blackholed connect without a timeout waits before failing.
    """

    def __init__(self, mode: str = "blackhole", hang: float = 20.0) -> None:
        if mode not in ("refuse", "blackhole", "observe"):
            raise ValueError(f"mode must be refuse, blackhole or observe, not {mode!r}")
        self.mode = mode
        self.hang = hang
        self.attempts: list[dict[str, Any]] = []
        self._saved: dict[str, Any] = {}

    def _record(self, kind: str, host: Any) -> None:
        caller = "?"
        for frame in reversed(traceback.extract_stack()[:-2]):
            if not any(part in frame.filename for part in _PLUMBING):
                caller = f"{frame.filename}:{frame.lineno} ({frame.name})"
                break
        self.attempts.append({"kind": kind, "host": str(host), "caller": caller, "t": time.perf_counter()})

    def __enter__(self) -> NetworkGuard:
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        self._saved = {"getaddrinfo": real_getaddrinfo, "connect": real_connect, "connect_ex": real_connect_ex,
                       "create_connection": socket.create_connection}
        guard = self

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if _is_local(host):
                return real_getaddrinfo(host, port, *args, **kwargs)
            guard._record("dns", host)
            if guard.mode == "observe":
                return real_getaddrinfo(host, port, *args, **kwargs)
            if guard.mode == "refuse":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (NetworkGuard)")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", int(port or 0)))]

        def blocked(sock: socket.socket, address: Any) -> None:
            host = address[0] if isinstance(address, tuple) else None
            guard._record("connect", host)
            if guard.mode == "blackhole":
                timeout = sock.gettimeout()
                time.sleep(guard.hang if timeout is None else min(timeout, guard.hang))
                raise TimeoutError("timed out (NetworkGuard blackhole)")
            raise ConnectionRefusedError("connection refused (NetworkGuard)")

        def passes(sock: socket.socket, address: Any) -> bool:
            if sock.family == socket.AF_UNIX or _is_local(address[0] if isinstance(address, tuple) else None):
                return True
            if guard.mode == "observe":
                guard._record("connect", address[0] if isinstance(address, tuple) else address)
                return True
            return False

        def connect(sock: socket.socket, address: Any) -> None:
            if passes(sock, address):
                return real_connect(sock, address)
            blocked(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            if passes(sock, address):
                return real_connect_ex(sock, address)
            try:
                blocked(sock, address)
            except OSError:
                return 111
            return 0

        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        socket.getaddrinfo = self._saved["getaddrinfo"]  # type: ignore[assignment]
        socket.socket.connect = self._saved["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = self._saved["connect_ex"]  # type: ignore[method-assign]


def tiny_recipe(data_root: Path, out_dir: Path, images: int, imgsz: int, epochs: int) -> dict[str, Any]:
    """YOLOv8n from its config on ``images`` coco128 images per split, plots on (fonts!)."""
    return {
        "task": "detection",
        "data": {"format": "yolo", "root": str(data_root / "coco128"), "yaml": "data.yaml", "limit": images, "image_size": imgsz},
        "model": {"id": "ultralytics:yolov8n"},
        "strategy": {"name": "progressive", "phase_epochs": [epochs, epochs, epochs]},
        "optimizer": {"lr": 0.001},
        "train": {"epochs": 3 * epochs, "batch_size": 4, "progress": False, "seed": 0},
        "output": {"dir": str(out_dir), "name": "offline", "plots": True},
    }


def measure(data_root: Path, mode: str = "blackhole", images: int = 4, imgsz: int = 64, epochs: int = 1, hang: float = 20.0) -> dict[str, Any]:
    """Import, build, train and evaluate under the guard; return timings and attempts."""
    with NetworkGuard(mode, hang) as guard, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        import visiontl_ultralytics  # noqa: F401 - Ultralytics itself is imported by the plugin
        from visiontl.api import evaluate, run
        from visiontl.config.loader import validate_recipe

        t_import = time.perf_counter()
        outcome = run(validate_recipe(tiny_recipe(data_root, Path(tmp), images, imgsz, epochs), "offline benchmark"))
        t_train = time.perf_counter()
        metrics = evaluate(outcome.run_dir, data_root=data_root)
        t_eval = time.perf_counter()
        audits = outcome.summary.get("audits", [])
    return {
        "mode": mode,
        "import_s": round(t_import - t0, 2),
        "train_s": round(t_train - t_import, 2),
        "eval_s": round(t_eval - t_train, 2),
        "wall_s": round(t_eval - t0, 2),
        "epochs": len(outcome.result.history),
        "audits_ok": all(a.get("ok") for a in audits),
        "map": metrics.get("map"),
        "attempts": [{k: v for k, v in a.items() if k != "t"} for a in guard.attempts],
    }


def plain_import(mode: str = "blackhole", hang: float = 20.0) -> dict[str, Any]:
    """What ``import ultralytics`` alone does under the guard (no visiontl environment)."""
    with NetworkGuard(mode, hang) as guard:
        t0 = time.perf_counter()
        import ultralytics  # noqa: F401
        wall = time.perf_counter() - t0
    return {"mode": mode, "plain_import_s": round(wall, 2), "attempts": [{k: v for k, v in a.items() if k != "t"} for a in guard.attempts]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"), help="shared data folder")
    parser.add_argument("--mode", default="blackhole", choices=("refuse", "blackhole", "observe"))
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per phase (three phases)")
    parser.add_argument("--hang", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plain-import", action="store_true", help="only measure a bare 'import ultralytics' (for contrast)")
    args = parser.parse_args(argv)
    if args.plain_import:
        result = plain_import(args.mode, args.hang)
        print(json.dumps(result) if args.json else f"import ultralytics: {result['plain_import_s']} s, {len(result['attempts'])} attempt(s)")
        return 0
    if "ultralytics" in sys.modules:
        print("warning: ultralytics was imported before the guard; import-time checks are not measured", file=sys.stderr)
    result = measure(Path(args.data), args.mode, args.images, args.imgsz, args.epochs, args.hang)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.mode}: import {result['import_s']} s, train {result['train_s']} s ({result['epochs']} epochs), "
              f"eval {result['eval_s']} s, wall {result['wall_s']} s; {len(result['attempts'])} network attempt(s)")
        for a in result["attempts"]:
            print(f"  {a['kind']} {a['host']} from {a['caller']}")
    return 0 if not result["attempts"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
