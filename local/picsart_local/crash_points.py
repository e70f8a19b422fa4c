"""Crash injection for the soak: a Lambda worker process dies (`os._exit`) at chosen points of a job.

Local tooling only: the worker (lambda_worker.py) installs it before importing the handler when the
function's environment carries `PICSART_LOCAL_CRASH_POINTS`; deployed code never sees it. The points, in the
order processing.py reaches them in one attempt:

- `before_call`: the Picsart tool call is about to be sent (the job record says processing, the idempotency
  record is in progress, the limiter's grant is taken): urllib3's `PoolManager.urlopen` of a POST under
  `PICSART_BASE_URL`.
- `after_call`: Picsart answered 200 and the result was downloaded, the output is not written yet:
  botocore's `before-send.s3.PutObject`.
- `after_output`: the output object is written, neither the job record nor the idempotency record says so:
  botocore's `after-call.s3.PutObject`.
- `after_event`: the job's completion event is put (EventBridge answered), the once-per-step record is not
  saved yet (completion_events.py): botocore's `after-call.events.PutEvents`. The one way to a job's second
  completion event.

Each point kills with its own probability. Before dying, the worker appends one JSON line to the crash log
(`{"point", "source", "function", "pid", "at"}`, where `source` is the object's `/bucket/key` or key; never a
query string, so never a signature) and one line to its function log. The runner then sees the worker's
pipe close and reports `Runtime.ExitError`, as Lambda does for a runtime that exits.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final
from urllib.parse import urlsplit

ENV_VAR: Final = "PICSART_LOCAL_CRASH_POINTS"
POINTS: Final = ("before_call", "after_call", "after_output", "after_event")
#: The exit status of a killed worker (the runner reports "Runtime exited with error: exit status 1").
EXIT_STATUS: Final = 1
_IMAGE_URL_FIELD = re.compile(rb'name="image_url"\r\n(?:[^\r\n]*\r\n)*?\r\n([^\r\n]+)\r\n')


@dataclass(frozen=True)
class CrashSettings:
    """Probability of a kill at each point (each time the point is reached), and where kills are logged."""

    before_call: float = 0.0
    after_call: float = 0.0
    after_output: float = 0.0
    after_event: float = 0.0
    log_path: str | None = None
    #: Seeds each worker's draws (mixed with its pid); None: unseeded.
    seed: int | None = None

    def __post_init__(self) -> None:
        for point in POINTS:
            rate = getattr(self, point)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"crash rate {point} must be within 0..1, got {rate}")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, point) > 0 for point in POINTS)

    def environment(self) -> dict[str, str]:
        """The function environment that turns the crash points on in every worker."""
        return {ENV_VAR: json.dumps(asdict(self))} if self.enabled else {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CrashSettings | None:
        raw = (os.environ if environ is None else environ).get(ENV_VAR)
        if not raw:
            return None
        values = json.loads(raw)
        return cls(**{name: values[name] for name in values if name in cls.__dataclass_fields__})


def read_crash_log(path: os.PathLike[str] | str) -> list[dict[str, Any]]:
    """Every kill logged so far (oldest first); an absent log is no kill."""
    try:
        with open(path, encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        return []


class _Crasher:
    def __init__(self, settings: CrashSettings) -> None:
        self.settings = settings
        seed = None if settings.seed is None else settings.seed * 1_000_003 + os.getpid()
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def maybe_crash(self, point: str, source: str | None) -> None:
        rate: float = getattr(self.settings, point)
        with self._lock:
            hit = rate > 0 and self._random.random() < rate
        if not hit:
            return
        line = {
            "point": point,
            "source": source,
            "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            "pid": os.getpid(),
            "at": time.time(),
        }
        if self.settings.log_path:
            descriptor = os.open(self.settings.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(descriptor, (json.dumps(line) + "\n").encode())
            finally:
                os.close(descriptor)
        print(f"[picsart-local] crash injected at {point} ({source}); the runtime exits", file=sys.stderr, flush=True)
        os._exit(EXIT_STATUS)


_installed: _Crasher | None = None


def install(settings: CrashSettings) -> None:
    """Hook the crash points into this process (once): urllib3 for the Picsart call, botocore for S3 and
    EventBridge."""
    global _installed
    if _installed is not None or not settings.enabled:
        return
    crasher = _installed = _Crasher(settings)
    _hook_picsart_call(crasher)
    _hook_put_object(crasher)
    _hook_put_events(crasher)


def install_from_environment() -> None:
    settings = CrashSettings.from_environment()
    if settings is not None:
        install(settings)


def _hook_picsart_call(crasher: _Crasher) -> None:
    import urllib3

    base_url = os.environ.get("PICSART_BASE_URL", "").rstrip("/")
    original: Callable[..., Any] = urllib3.PoolManager.urlopen

    def urlopen(self: urllib3.PoolManager, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:
        if base_url and method == "POST" and url.startswith(base_url + "/"):
            crasher.maybe_crash("before_call", _image_url_path(kw.get("body")))
        return original(self, method, url, redirect, **kw)

    urllib3.PoolManager.urlopen = urlopen  # type: ignore[method-assign]


def _hook_put_object(crasher: _Crasher) -> None:
    import botocore.session

    current = threading.local()

    def remember(**kwargs: Any) -> None:
        params = kwargs.get("params") or {}
        metadata = params.get("Metadata") or {}
        current.source = metadata.get("source-key") or params.get("Key")

    def before_send(**_: Any) -> None:
        crasher.maybe_crash("after_call", getattr(current, "source", None))

    def after_call(**_: Any) -> None:
        crasher.maybe_crash("after_output", getattr(current, "source", None))

    original_init: Callable[..., None] = botocore.session.Session.__init__

    def init(self: botocore.session.Session, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.register("provide-client-params.s3.PutObject", remember)
        self.register("before-send.s3.PutObject", before_send)
        self.register("after-call.s3.PutObject", after_call)

    botocore.session.Session.__init__ = init  # type: ignore[method-assign]


def _hook_put_events(crasher: _Crasher) -> None:
    import botocore.session

    current = threading.local()

    def remember(**kwargs: Any) -> None:
        entries = (kwargs.get("params") or {}).get("Entries") or [{}]
        try:
            current.source = json.loads(entries[0].get("Detail") or "{}").get("key")
        except json.JSONDecodeError:
            current.source = None

    def after_call(**_: Any) -> None:
        crasher.maybe_crash("after_event", getattr(current, "source", None))

    original_init: Callable[..., None] = botocore.session.Session.__init__

    def init(self: botocore.session.Session, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.register("provide-client-params.events.PutEvents", remember)
        self.register("after-call.events.PutEvents", after_call)

    botocore.session.Session.__init__ = init  # type: ignore[method-assign]


def _image_url_path(body: object) -> str | None:
    """The path of the image_url in a multipart body (the query, with its signature, is left out)."""
    if not isinstance(body, bytes):
        return None
    found = _IMAGE_URL_FIELD.search(body)
    return urlsplit(found.group(1).decode(errors="replace")).path if found else None
