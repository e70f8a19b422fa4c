"""Run the emulator in the foreground: ``python -m picsart_local.emulator [--host H] [--port P]``.

Settings come from ``PICSART_EMULATOR_*`` environment variables. The first line on stdout is the
base URL (``http://host:port/tools/1.0``), so a parent process can read where it listens; calls are
logged to stderr. SIGINT and SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from pydantic import ValidationError

from .server import PicsartEmulator
from .settings import EmulatorSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Start the emulator, print its base URL, serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m picsart_local.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--quiet", action="store_true", help="do not log each call to stderr")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        settings = EmulatorSettings.from_env()
    except ValidationError as exc:
        print(f"invalid PICSART_EMULATOR_* settings:\n{exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    emulator = PicsartEmulator(settings)
    emulator.start(host=args.host, port=args.port)
    try:
        print(emulator.base_url, flush=True)
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
