"""Getting weights into models: local files, published weights, and failing fast offline.

Libraries retry downloads for a minute or more when the network is down (huggingface_hub
retries with back-off; some trainers hang on fonts and check files). Plugins ask
:func:`require_reachable` before a download that is not already cached, which answers in
a few seconds and raises a :class:`~visiontl.errors.WeightsError` that names the model, the
source tried and the fix.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from visiontl.contracts import WeightsReport
from visiontl.errors import WeightsError

#: Seconds allowed to resolve and connect to a weights host before calling it unreachable.
PROBE_TIMEOUT_S = float(os.environ.get("VISIONTL_NET_TIMEOUT", "3"))

_REACHABLE: dict[str, bool] = {}


def host_reachable(host: str, port: int = 443, timeout: float | None = None, scheme: str = "https") -> bool:
    """Whether ``host:port`` can be reached within ``timeout`` seconds, directly or by proxy.

    When the environment names a proxy for ``scheme`` (``HTTPS_PROXY``/``HTTP_PROXY``/
    ``ALL_PROXY``, upper or lower case) and ``NO_PROXY`` does not exempt the host, the question
    goes to the proxy, as the download would: a ``CONNECT host:port`` answered with status 200.
    Otherwise a direct TCP connection must open. The answer is remembered for the process, so a
    run that asks about several files pays for one probe per host and route.
    """
    if os.environ.get("VISIONTL_OFFLINE", "").strip() not in ("", "0"):
        return False
    proxy = proxy_for(scheme, host)
    key = f"{host}:{port} via {proxy[0]}:{proxy[1]}" if proxy else f"{host}:{port}"
    if key in _REACHABLE:
        return _REACHABLE[key]
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    if proxy is None:
        ok = _connect(host, port, deadline) is not None
    else:
        ok = _proxy_connect(proxy, host, port, deadline)
    _REACHABLE[key] = ok
    return ok


def proxy_for(scheme: str, host: str) -> tuple[str, int, str | None] | None:
    """The proxy (host, port, ``user:password`` or ``None``) the environment routes ``host`` through.

    Read the way urllib and requests read it (``getproxies_environment``/``NO_PROXY``), so the
    probe takes the route the download will take.
    """
    from urllib.request import getproxies_environment, proxy_bypass_environment

    proxies = getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or proxy_bypass_environment(host, proxies):
        return None
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        return None
    default_port = 443 if parsed.scheme == "https" else 1080 if parsed.scheme.startswith("socks") else 8080
    credentials = None
    if parsed.username is not None:
        from urllib.parse import unquote

        credentials = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}"
    return parsed.hostname, parsed.port or default_port, credentials


def _connect(host: str, port: int, deadline: float) -> socket.socket | None:
    """An open TCP socket to ``host:port`` before ``deadline``, or ``None``."""
    try:
        # getaddrinfo has no timeout of its own; on this path a dead resolver answers fast
        # (EAI_NONAME / EAI_AGAIN), and the connect below is bounded.
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    for family, kind, proto, _, addr in infos:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(left)
        try:
            sock.connect(addr)
            return sock
        except OSError:
            sock.close()
    return None


def _proxy_connect(proxy: tuple[str, int, str | None], host: str, port: int, deadline: float) -> bool:
    """Whether the proxy opens a tunnel to ``host:port`` (HTTP ``CONNECT`` answered with 200)."""
    proxy_host, proxy_port, credentials = proxy
    sock = _connect(proxy_host, proxy_port, deadline)
    if sock is None:
        return False
    with sock:
        lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
        if credentials:
            import base64

            lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials.encode()).decode())
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            status = sock.recv(256).split(b"\r\n", 1)[0].split()
        except OSError:
            return False
    return len(status) >= 2 and status[1] == b"200"


def require_reachable(url: str, model: str, fix: str) -> None:
    """Raise a :class:`WeightsError` at once when ``url``'s host cannot be reached.

    Args:
        url: the address the weights would be downloaded from.
        model: the model id, for the message.
        fix: what the user can do instead (a local file, a cache path, going online).
    """
    parsed = urlparse(url)
    host = parsed.hostname or url
    scheme = parsed.scheme or "https"
    port = parsed.port or (80 if scheme == "http" else 443)
    if not host_reachable(host, port, scheme=scheme):
        proxy = proxy_for(scheme, host)
        route = f" through the proxy {proxy[0]}:{proxy[1]}" if proxy else ""
        raise WeightsError(
            f"Pretrained weights for '{model}' are not cached and {host} is unreachable{route} "
            f"(tried {url}).",
            fix=fix,
        )


@contextmanager
def hf_offline() -> Iterator[None]:
    """Make huggingface_hub use its cache only (no network calls, no retries) inside."""
    keys = ("HF_HUB_OFFLINE",)
    old = {k: os.environ.get(k) for k in keys}
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as constants

        previous = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
    except Exception:  # noqa: BLE001 - huggingface_hub absent or reorganised
        constants = None
        previous = None
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = previous
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resolve_weights_path(path: str | Path, data_root: Path | None = None) -> Path:
    """Resolve a recipe's ``weights:`` path; fail clearly if absent.

    The order is the one recipes use for data: an absolute path as given; a relative one
    against the data root first, then against the working directory. When both hold a file of
    that name and they differ, the data root's is used and a warning names both, so a stray
    file in the working directory never silently replaces the one the recipe means.
    """
    from visiontl import log

    p = Path(os.path.expanduser(str(path)))
    candidates = [p] if p.is_absolute() else ([data_root / p] if data_root else []) + [Path.cwd() / p]
    found = [c.resolve() for c in candidates if c.is_file()]
    if found:
        if len(set(found)) > 1:
            log.warning(f"weights '{path}' exists under the data root ({found[0]}) and the working directory "
                        f"({found[1]}): using the data root's")
        return found[0]
    tried = ", ".join(str(c) for c in candidates)
    raise WeightsError(
        f"Weights file '{path}' not found (tried {tried}).",
        fix="give an absolute path, or one relative to the data root ($VISIONTL_DATA_DIR, default ./data)",
    )


_NESTED_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "module")


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Read a state dict from ``.pt/.pth/.bin`` (plain or inside a checkpoint) or ``.safetensors``.

    Nested checkpoints (``{"state_dict": ...}``, ``{"model": ...}``, visiontl's own) are
    unwrapped and a DataParallel ``module.`` prefix is removed.

    Args:
        path: the file, as a ``str`` or a :class:`~pathlib.Path` (``~`` expanded).

    Raises:
        WeightsError: the file cannot be read, or holds no state dict.

    Example:
        >>> state = read_state_dict("weights/squeezenet1_1_imagenet_features.pth")  # doctest: +SKIP
        >>> next(iter(state))  # doctest: +SKIP
        'features.0.weight'
    """
    import torch

    path = Path(os.path.expanduser(str(path)))

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear message
        raise WeightsError(
            f"Cannot read weights file '{path}': {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            fix="pass a state_dict saved with torch.save, a checkpoint containing one, or a .safetensors file",
        ) from None
    for _ in range(3):
        if isinstance(obj, Mapping) and not _looks_like_state_dict(obj):
            inner = next((obj[k] for k in _NESTED_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _looks_like_state_dict(obj):
        raise WeightsError(
            f"Weights file '{path}' holds no state_dict (found {type(obj).__name__}).",
            fix="save the model's state_dict(), or a checkpoint with a 'state_dict' or 'model' entry",
        )
    out = OrderedDict(obj)
    if all(k.startswith("module.") for k in out):
        out = OrderedDict((k[len("module."):], v) for k, v in out.items())
    return out


def _looks_like_state_dict(obj: Mapping[str, Any]) -> bool:
    import torch

    return bool(obj) and all(isinstance(k, str) for k in obj) and any(isinstance(v, torch.Tensor) for v in obj.values())


def load_matching(
    model: Any,
    state_dict: Mapping[str, Any],
    source: str,
    key_map: Callable[[str], str | None] | None = None,
) -> WeightsReport:
    """Copy every tensor whose name and shape match into ``model``; report the rest.

    Tensors whose name matches but shape differs (an ImageNet head against a 2-class head)
    are left at their fresh initialisation and listed as ``reinitialised``.

    Args:
        model: the module to load into.
        state_dict: tensors by name.
        source: recorded as the report's source (``file:<path>`` ...).
        key_map: renames a source key to the model's key (``None`` drops it).

    Raises:
        WeightsError: when not a single tensor matches (wrong architecture or key names).
    """
    own = model.state_dict()
    mapped: dict[str, Any] = {}
    unexpected: list[str] = []
    for key, value in state_dict.items():
        target = key_map(key) if key_map else key
        if target is None or target not in own:
            unexpected.append(key)
            continue
        mapped[target] = value
    reinitialised = [k for k, v in mapped.items() if tuple(v.shape) != tuple(own[k].shape)]
    loadable = {k: v for k, v in mapped.items() if k not in reinitialised}
    if not loadable:
        sample = ", ".join(list(state_dict)[:3])
        raise WeightsError(
            f"No tensor of {source} fits the model (source keys like {sample}; model keys like "
            f"{', '.join(list(own)[:3])}).",
            fix="check that the weights belong to this architecture",
        )
    # Modules that version their state (MNASNet, BatchNorm) read it from _metadata: keep the
    # model's own, since the tensors are being loaded into this model.
    ordered: OrderedDict[str, Any] = OrderedDict(loadable)
    ordered._metadata = getattr(own, "_metadata", None)  # type: ignore[attr-defined]
    model.load_state_dict(ordered, strict=False)
    # A tensor of the wrong shape is reported once, as re-initialised (the new head), not
    # also as missing.
    missing = [k for k in own if k not in loadable and k not in reinitialised and not k.endswith("num_batches_tracked")]
    return WeightsReport(
        source=source,
        loaded=len(loadable),
        missing=missing,
        unexpected=unexpected,
        reinitialised=reinitialised,
    )
