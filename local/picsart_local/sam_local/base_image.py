"""A stand-in for AWS's Lambda base image `public.ecr.aws/lambda/python:3.13-<arch>`, built offline.

`sam local invoke` builds its image FROM that tag (with `--skip-pull-image`, from a local image of that tag); when
the registry cannot be reached, `make sam-local` builds this stand-in under the same tag. It behaves like the
official image where SAM and the runtime interface emulator look:
- Python 3.13 at /var/lang/bin/python3.13 (Debian's, from a minimal root file system of the Debian release that
  ships it), `awslambdaric` and `boto3` in /var/runtime (from PyPI, for the image's platform);
- /var/runtime/bootstrap and /var/runtime/bootstrap.py as the official image has them: the function's code in
  /var/task first, then the layer's /opt/python, then the runtime's packages;
- /lambda-entrypoint.sh, the official image's entry point (SAM uses its own emulator's instead);
- the official image's environment (LAMBDA_TASK_ROOT, LAMBDA_RUNTIME_DIR, PATH, LD_LIBRARY_PATH), working
  directory /var/task, and empty /var/task, /opt and /var/rapid for SAM to fill.

Each build is also tagged `picsart-local/lambda-python-standin:<arch>-<recipe digest>`, so a stand-in is told
from the official image, and an older recipe's stand-in is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

PYTHON_VERSION: Final = "3.13"
#: The Debian release whose python3 is 3.13.
DEBIAN_SUITE: Final = "trixie"
DEBIAN_PACKAGES: Final = ("python3.13", "ca-certificates")
RUNTIME_REQUIREMENTS: Final = ("awslambdaric", "boto3")
STANDIN_REPOSITORY: Final = "picsart-local/lambda-python-standin"
ARCHITECTURES: Final = ("x86_64", "arm64")
_DEBIAN_ARCH: Final = {"x86_64": "amd64", "arm64": "arm64"}
_WHEEL_PLATFORM: Final = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}

BOOTSTRAP: Final = f"""#!/bin/bash
export AWS_EXECUTION_ENV=AWS_Lambda_python{PYTHON_VERSION}
if [ -z "$AWS_LAMBDA_EXEC_WRAPPER" ]; then
  exec /var/lang/bin/python{PYTHON_VERSION} /var/runtime/bootstrap.py
else
  wrapper="$AWS_LAMBDA_EXEC_WRAPPER"
  if [ ! -f "$wrapper" ]; then echo "$wrapper: does not exist"; exit 127; fi
  if [ ! -x "$wrapper" ]; then echo "$wrapper: is not an executable"; exit 126; fi
  exec -- "$wrapper" /var/lang/bin/python{PYTHON_VERSION} /var/runtime/bootstrap.py
fi
"""

BOOTSTRAP_PY: Final = '''"""The runtime's start: the function's code, the layers' packages, the runtime's own."""
import os
import site
import sys

import awslambdaric.__main__ as awslambdaricmain


def _opt_site():
    return "/opt/python/lib/python{}.{}/site-packages".format(*sys.version_info[:2])


def _var_lang_site():
    return "/var/lang/lib/python{}.{}/site-packages".format(*sys.version_info[:2])


def main():
    if "PYTHONPATH" not in os.environ:
        sys.path.insert(0, _var_lang_site())
        sys.path.insert(0, "/opt/python")
        sys.path.insert(0, _opt_site())
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    site.addsitedir(os.environ["LAMBDA_TASK_ROOT"])
    if "PYTHONPATH" not in os.environ:
        site.addsitedir(_opt_site())
        site.addsitedir("/opt/python")
        os.environ["PYTHONPATH"] = os.environ["LAMBDA_RUNTIME_DIR"]
    awslambdaricmain.main([os.environ["LAMBDA_TASK_ROOT"], os.environ["_HANDLER"]])


if __name__ == "__main__":
    main()
'''

LAMBDA_ENTRYPOINT: Final = """#!/bin/sh
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
"""

#: Path in the image -> (mode, content).
FILES: Final = {
    "var/runtime/bootstrap": (0o755, BOOTSTRAP),
    "var/runtime/bootstrap.py": (0o644, BOOTSTRAP_PY),
    "lambda-entrypoint.sh": (0o755, LAMBDA_ENTRYPOINT),
}
SYMLINKS: Final = {
    f"var/lang/bin/python{PYTHON_VERSION}": f"/usr/bin/python{PYTHON_VERSION}",
    "var/lang/bin/python3": f"python{PYTHON_VERSION}",
    "var/lang/bin/python": f"python{PYTHON_VERSION}",
}
DIRECTORIES: Final = ("var/task", "opt", "var/rapid", "var/lang/lib", "usr/local/bin")
#: The official image's configuration (Debian's minimal system has no en_US.UTF-8 locale: C.UTF-8 instead).
IMAGE_CONFIGURATION: Final = (
    "ENV LANG=C.UTF-8",
    "ENV TZ=:/etc/localtime",
    "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib"
    ":/opt/lib",
    "ENV LAMBDA_TASK_ROOT=/var/task",
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
    "WORKDIR /var/task",
    'ENTRYPOINT ["/lambda-entrypoint.sh"]',
)
#: Left out of the image: package caches and documentation.
_PRUNED: Final = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info")


def host_architecture() -> str:
    """The Lambda architecture this machine runs natively: x86_64 or arm64."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "aarch64": "arm64"}.get(machine, machine)


def image_name(architecture: str) -> str:
    """The tag SAM builds FROM for a python3.13 function of this architecture."""
    return f"public.ecr.aws/lambda/python:{PYTHON_VERSION}-{architecture}"


def recipe_digest(architecture: str) -> str:
    """Changes whenever anything the stand-in is built from changes."""
    recipe = {
        "architecture": architecture,
        "suite": DEBIAN_SUITE,
        "packages": DEBIAN_PACKAGES,
        "requirements": RUNTIME_REQUIREMENTS,
        "files": {path: [mode, content] for path, (mode, content) in FILES.items()},
        "symlinks": SYMLINKS,
        "directories": DIRECTORIES,
        "configuration": IMAGE_CONFIGURATION,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def standin_tag(architecture: str) -> str:
    return f"{STANDIN_REPOSITORY}:{architecture}-{recipe_digest(architecture)}"


# ------------------------------------------------------------------------------------- Debian's mirror


def debian_mirror(apt_directory: Path = Path("/etc/apt")) -> str | None:
    """The Debian archive this machine's apt uses (deb822 `URIs:` or one-line `deb URI SUITE`), or None.

    The archive is the source whose suites include a release's own suite (`bookworm`, not `bookworm-security`
    or `bookworm-updates`). Read at build time: no mirror is written into the project.
    """
    sources: list[tuple[list[str], list[str], list[str]]] = []  # (types, URIs, suites)
    for path in sorted((apt_directory / "sources.list.d").glob("*.sources")):
        sources.extend(_deb822_sources(path.read_text(errors="replace")))
    for path in [apt_directory / "sources.list", *sorted((apt_directory / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            sources.extend(_one_line_sources(path.read_text(errors="replace")))
    for types, uris, suites in sources:
        if "deb" in types and any("-" not in suite and "/" not in suite for suite in suites) and uris:
            return uris[0].rstrip("/")
    return None


def _deb822_sources(text: str) -> Iterable[tuple[list[str], list[str], list[str]]]:
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        for line in paragraph.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.split()
        if fields.get("enabled", ["yes"])[0].lower() == "no":
            continue
        yield fields.get("types", []), fields.get("uris", []), fields.get("suites", [])


def _one_line_sources(text: str) -> Iterable[tuple[list[str], list[str], list[str]]]:
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] in ("deb", "deb-src"):
            yield [words[0]], [words[1]], [words[2]]


# ------------------------------------------------------------------------------------------ the build

Runner = Callable[..., object]


def debootstrap_command(root: Path, architecture: str, mirror: str | None) -> list[str]:
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--arch={_DEBIAN_ARCH[architecture]}",
        f"--include={','.join(DEBIAN_PACKAGES)}",
        DEBIAN_SUITE,
        str(root),
    ]
    return [*command, mirror] if mirror else command


def runtime_install_command(root: Path, architecture: str) -> list[str]:
    """pip, run on this machine, installs the runtime's packages for the image's platform: nothing runs in it."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--no-warn-conflicts",  # the image's packages, not this environment's
        "--target",
        str(root / "var" / "runtime"),
        "--platform",
        _WHEEL_PLATFORM[architecture],
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        *RUNTIME_REQUIREMENTS,
    ]


def write_runtime_files(root: Path) -> None:
    """The official image's files, links and directories, into a root file system."""
    for directory in DIRECTORIES:
        (root / directory).mkdir(parents=True, exist_ok=True)
    for relative, (mode, content) in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
    for relative, target in SYMLINKS.items():
        link = root / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


def build_root_filesystem(root: Path, architecture: str, mirror: str | None, run: Runner = subprocess.run) -> None:
    """debootstrap, the runtime's packages and files; needs root (debootstrap) and reaches Debian and PyPI."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {architecture!r}")
    run(debootstrap_command(root, architecture, mirror), check=True)
    run(runtime_install_command(root, architecture), check=True)
    write_runtime_files(root)
    for relative in _PRUNED:
        shutil.rmtree(root / relative, ignore_errors=True)


def import_image(client: Any, root: Path, architecture: str, run: Runner = subprocess.run) -> str:
    """`docker import` of the root file system under the official tag and the stand-in's own; the image id."""
    repository, tag = image_name(architecture).rsplit(":", 1)
    with tempfile.TemporaryDirectory(prefix="lambda-standin-") as folder:
        archive = Path(folder) / "rootfs.tar"
        run(["tar", "--create", "--numeric-owner", f"--file={archive}", f"--directory={root}", "."], check=True)
        client.api.import_image_from_file(
            str(archive), repository=repository, tag=tag, changes=list(IMAGE_CONFIGURATION)
        )
    image = client.images.get(image_name(architecture))
    standin_repository, standin_version = standin_tag(architecture).rsplit(":", 1)
    image.tag(standin_repository, standin_version)
    return str(image.id)
