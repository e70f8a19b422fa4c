"""`make sam-local`: Docker, its daemon and the Lambda base image that `sam local invoke` needs, on this machine.

Each step is done only when needed, and everything is reused on the next run:
1. A Docker daemon that answers is used as it is. Otherwise, Debian's `docker.io` is installed when `dockerd` is
   missing (as root, with apt-get; its package scripts are not allowed to start a daemon of their own), and
   `dockerd --bridge=none --iptables=false --ip-masq=false` is started, detached, logging to DOCKERD_LOG: no
   bridge, and the host's firewall untouched; every container then runs on the host's network (hostnet.py).
2. The image `public.ecr.aws/lambda/python:3.13-<arch>` is used when present (the official one, or this
   project's current stand-in); otherwise it is pulled, and when the registry cannot be reached the stand-in
   is built (base_image.py) with debootstrap, installed when missing.

When this machine cannot have Docker (not root, no apt-get), it says why and exits 0: tests/sam/ then skip,
with the same reason. On CI (CI=true) that is a failure instead, as is any step that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from picsart_local.sam_local.base_image import (
    STANDIN_REPOSITORY,
    build_root_filesystem,
    debian_mirror,
    host_architecture,
    image_name,
    import_image,
    standin_tag,
)

DOCKERD_ARGUMENTS: Final = ("--bridge=none", "--iptables=false", "--ip-masq=false")
DOCKERD_LOG: Final = Path("/var/log/picsart-local-dockerd.log")
DOCKERD_START_TIMEOUT_S: Final = 60.0
#: Left in place while apt installs docker.io: Debian's package scripts start no service (invoke-rc.d reads it).
POLICY_RC_D: Final = Path("/usr/sbin/policy-rc.d")

Echo = Callable[[str], None]


class NotPreparable(Exception):
    """This machine cannot have what `sam local invoke` needs; the message says why and what would do."""


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def connect(timeout_s: float = 10.0) -> Any | None:
    """A docker client whose daemon answers (DOCKER_HOST, else the default socket), or None."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except (DockerException, OSError):
        return None
    return client


def readiness(architecture: str | None = None) -> str | None:
    """None when `sam local invoke` can run here; otherwise why not (for a test's skip or failure)."""
    architecture = architecture or host_architecture()
    client = connect()
    if client is None:
        return "no Docker daemon answers: `make sam-local` installs and starts one (as root, with apt-get)"
    from docker.errors import ImageNotFound

    try:
        client.images.get(image_name(architecture))
    except ImageNotFound:
        return f"no image {image_name(architecture)}: `make sam-local` pulls it or builds a stand-in"
    finally:
        client.close()
    return None


# ---------------------------------------------------------------------------------------- the daemon


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run_logged(command: list[str], echo: Echo, environment: dict[str, str] | None = None) -> None:
    """Run a long, chatty step quietly; when it fails, show the end of what it printed and raise."""
    with tempfile.TemporaryFile(mode="w+") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment, check=False)
        if result.returncode != 0:
            log.seek(0)
            for line in log.read().splitlines()[-40:]:
                echo(f"  | {line}")
            raise subprocess.CalledProcessError(result.returncode, command)


def _apt_install(packages: list[str], echo: Echo, updated: list[bool]) -> None:
    if not _is_root() or shutil.which("apt-get") is None:
        raise NotPreparable(f"{', '.join(packages)} missing, and installing needs root and apt-get")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not updated:
        echo("apt-get update")
        run_logged(["apt-get", "update"], echo, environment)
        updated.append(True)
    echo(f"apt-get install {' '.join(packages)}")
    guard = not POLICY_RC_D.exists()
    if guard:
        POLICY_RC_D.write_text("#!/bin/sh\n# picsart-local: no service starts while apt installs Docker\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        run_logged(["apt-get", "install", "-y", "--no-install-recommends", *packages], echo, environment)
    finally:
        if guard:
            POLICY_RC_D.unlink(missing_ok=True)


def ensure_daemon(echo: Echo, updated: list[bool]) -> Any:
    client = connect()
    if client is not None:
        echo(f"Docker: the running daemon ({client.version().get('Version', '?')})")
        return client
    if os.environ.get("DOCKER_HOST"):
        raise NotPreparable(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer; start that daemon")
    if shutil.which("dockerd") is None:
        _apt_install(["docker.io"], echo, updated)
    if not _is_root():
        raise NotPreparable("no Docker daemon runs, and starting one needs root")
    echo(f"starting dockerd {' '.join(DOCKERD_ARGUMENTS)} (log: {DOCKERD_LOG})")
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(
            ["dockerd", *DOCKERD_ARGUMENTS],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # a prepared service, like the venv: it outlives `make`
        )
    deadline = time.monotonic() + DOCKERD_START_TIMEOUT_S
    while time.monotonic() < deadline:
        client = connect(timeout_s=2)
        if client is not None:
            return client
        time.sleep(0.5)
    raise RuntimeError(f"dockerd did not answer within {DOCKERD_START_TIMEOUT_S:.0f} s: see {DOCKERD_LOG}")


# ------------------------------------------------------------------------------------------ the image


def _tags(client: Any, name: str) -> list[str] | None:
    from docker.errors import ImageNotFound

    try:
        return list(client.images.get(name).tags)
    except ImageNotFound:
        return None


def ensure_base_image(client: Any, architecture: str, echo: Echo, updated: list[bool]) -> None:
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    name = image_name(architecture)
    tags = _tags(client, name)
    ours = [tag for tag in tags or [] if tag.startswith(STANDIN_REPOSITORY + ":")]
    if tags is not None and not ours:
        echo(f"image: {name} (present, not a stand-in: used as it is)")
        return
    if standin_tag(architecture) in ours:
        echo(f"image: {name} (this project's stand-in, {standin_tag(architecture)}: reused)")
        return
    echo(f"image: pulling {name}")
    try:
        client.images.pull(name)
        echo(f"image: {name} pulled")
        return
    except (DockerException, RequestException) as error:
        reason = getattr(error, "explanation", None) or str(error)
        echo(f"image: cannot pull {name} ({str(reason).splitlines()[0][:200]}); building a stand-in")
    build_standin(client, architecture, echo, updated)


def build_standin(client: Any, architecture: str, echo: Echo, updated: list[bool]) -> None:
    if not _is_root():
        raise NotPreparable("building the stand-in Lambda image needs root (debootstrap)")
    if shutil.which("debootstrap") is None:
        _apt_install(["debootstrap"], echo, updated)
    mirror = debian_mirror()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lambda-standin-root-") as folder:
        root = Path(folder) / "rootfs"
        echo(f"image: debootstrap {'from ' + mirror if mirror else '(its default mirror)'}, then the runtime")
        build_root_filesystem(root, architecture, mirror, run=lambda command, **_: run_logged(command, echo))
        image_id = import_image(client, root, architecture)
    # Older stand-ins of this architecture are this project's own: removed, not left to pile up.
    for image in client.images.list(name=STANDIN_REPOSITORY):
        if image.id != image_id:
            for tag in image.tags:
                if tag.startswith(f"{STANDIN_REPOSITORY}:{architecture}-"):
                    client.images.remove(tag)
    echo(f"image: stand-in {standin_tag(architecture)} built in {time.monotonic() - started:.0f} s")


# ------------------------------------------------------------------------------------------ the whole


def prepare(architecture: str | None = None, echo: Echo = print) -> int:
    """0 when ready, or when this machine cannot have Docker outside CI; 1 otherwise."""
    architecture = architecture or host_architecture()
    started = time.monotonic()
    updated: list[bool] = []
    try:
        client = ensure_daemon(echo, updated)
        ensure_base_image(client, architecture, echo, updated)
    except NotPreparable as reason:
        if on_ci():
            echo(f"sam-local: cannot prepare Docker on CI: {reason}")
            return 1
        echo(f"sam-local: {reason}. tests/sam/ will be skipped.")
        return 0
    except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
        echo(f"sam-local: failed: {error}")
        return 1
    echo(f"sam-local: ready for `sam local invoke` ({architecture}) in {time.monotonic() - started:.1f} s")
    return 0


def main() -> None:
    sys.exit(prepare(echo=lambda line: print(line, flush=True)))


if __name__ == "__main__":
    main()
