"""Build the SOAR app package (a .tgz SOAR installs) without a network, from a local wheelhouse.

    .venv/soar/bin/python soar/package.py [--fetch] [--output dist/mdefilealerts-<version>.tgz]

``soarapps package build`` cannot package this app: it reads every dependency from uv.lock as a
registry URL to download, and ``mde-file-alerts`` is built from this repository (lib/), so uv.lock
has no URL (nor version) for it. This script does what that command does with the SDK's own
pieces (manifest from the app object, ``DependencyWheel`` entries, the same archive layout) and
differs only where the wheels come from:

- ``mde-file-alerts`` is built here from lib/ (hatchling, no build isolation, offline);
- every other runtime dependency is the wheel uv.lock pins, taken from the wheelhouse
  (build/soar/wheelhouse) and checked against the lock's sha256. ``--fetch`` first downloads the
  missing ones from the URLs in uv.lock; that is the only step that needs the package registry.

The app runs on Python 3.13 only, on Linux x86_64 and aarch64, so one wheel per architecture is
chosen with ``packaging.tags`` (the SDK's own selection misses abi3 wheels tagged for an older
CPython, such as cryptography's cp311-abi3).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tomllib
from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from soar_sdk.cli.manifests.processors import ManifestProcessor
from soar_sdk.meta.dependencies import (
    DEPENDENCIES_TO_REJECT,
    DEPENDENCIES_TO_SKIP,
    DependencyList,
    DependencyWheel,
)
from soar_sdk.paths import SDK_TEMPLATES

import build

SOAR_DIR = Path(__file__).resolve().parent
ROOT = SOAR_DIR.parent
LOCAL_DISTRIBUTION_DIR = SOAR_DIR / "mde-file-alerts"
DEFAULT_WHEELHOUSE = ROOT / "build" / "soar" / "wheelhouse"
PYTHON = (3, 13)
ARCHITECTURES = ("x86_64", "aarch64")
# The SDK's order: glibc 2.28 (RHEL/Oracle 8, what SOAR runs on), then older manylinux levels.
_GLIBC_MINORS = range(28, 16, -1)
_FETCH_ATTEMPTS = 3
_FETCH_TIMEOUT = 60.0


class PackagingError(Exception):
    """The package cannot be built; the message says what to do."""


@dataclass(frozen=True)
class LockedWheel:
    filename: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Dependency:
    """One runtime dependency and the wheel each architecture installs (the same file when pure)."""

    name: str
    version: str
    wheels: Mapping[str, LockedWheel]

    @property
    def is_pure(self) -> bool:
        return len({wheel.filename for wheel in self.wheels.values()}) == 1


# --- which wheels: uv.lock ------------------------------------------------------------------------


def marker_environment(architecture: str) -> dict[str, str]:
    """PEP 508 marker values of SOAR's Python 3.13 on Linux."""
    version = ".".join(map(str, PYTHON))
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{version}.0",
        "os_name": "posix",
        "platform_machine": architecture,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{version}.0",
        "python_version": version,
        "sys_platform": "linux",
        "extra": "",
    }


def target_tags(architecture: str) -> list[Tag]:
    """Wheel tags SOAR's CPython 3.13 accepts, best first."""
    platforms = [f"manylinux_2_{minor}_{architecture}" for minor in _GLIBC_MINORS]
    platforms.append(f"manylinux2014_{architecture}")
    interpreter = f"cp{PYTHON[0]}{PYTHON[1]}"
    return [
        *cpython_tags(PYTHON, abis=[interpreter], platforms=platforms),
        *compatible_tags(PYTHON, interpreter=interpreter, platforms=platforms),
    ]


def runtime_dependencies(
    lock: Mapping[str, Any],
    root: str,
    *,
    provided: Iterable[str],
    rejected: Iterable[str],
) -> tuple[list[Dependency], list[str]]:
    """The registry dependencies to bundle, and the names of local ones (built from this repository).

    Follows ``dependencies`` (and requested extras) from ``root``, evaluating markers for Linux on
    both architectures; packages the SOAR platform ``provided`` itself are not followed.
    """
    packages: dict[str, Any] = {canonicalize_name(package["name"]): package for package in lock["package"]}
    provided_names = {canonicalize_name(name) for name in provided}
    rejected_names = {canonicalize_name(name) for name in rejected}
    environments = [marker_environment(architecture) for architecture in ARCHITECTURES]
    seen: set[str] = set()
    walked: set[tuple[str, tuple[str, ...]]] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(canonicalize_name(root), ())]
    while pending:
        name, extras = pending.pop()
        if (name, extras) in walked:
            continue
        walked.add((name, extras))
        package = packages.get(name)
        if package is None:
            raise PackagingError(f"uv.lock has no entry for {name}; run `uv lock` in soar/.")
        edges = list(package.get("dependencies", []))
        for extra in extras:
            edges.extend(package.get("optional-dependencies", {}).get(extra, []))
        for edge in edges:
            marker = edge.get("marker")
            if marker and not any(Marker(marker).evaluate(env) for env in environments):
                continue
            dependency = canonicalize_name(edge["name"])
            if dependency in rejected_names:
                raise PackagingError(f"{dependency} must not be bundled with a SOAR app.")
            if dependency in provided_names:
                continue
            pending.append((dependency, tuple(sorted(edge.get("extra", ())))))
            seen.add(dependency)
    bundled: list[Dependency] = []
    local: list[str] = []
    for name in sorted(seen):
        package = packages[name]
        if "registry" not in package.get("source", {}):
            local.append(name)
            continue
        bundled.append(_dependency(package))
    return bundled, local


def _dependency(package: Mapping[str, Any]) -> Dependency:
    offered = [
        LockedWheel(wheel["url"].rsplit("/", 1)[-1], wheel["url"], wheel["hash"].removeprefix("sha256:"))
        for wheel in package.get("wheels", [])
    ]
    chosen = {architecture: _best_wheel(package, offered, architecture) for architecture in ARCHITECTURES}
    return Dependency(package["name"], package["version"], chosen)


def _best_wheel(package: Mapping[str, Any], offered: list[LockedWheel], architecture: str) -> LockedWheel:
    ranking: dict[Tag, int] = {}
    for rank, tag in enumerate(target_tags(architecture)):
        ranking.setdefault(tag, rank)
    best: tuple[int, LockedWheel] | None = None
    for wheel in offered:
        _, _, _, tags = parse_wheel_filename(wheel.filename)
        wheel_rank = min((ranking[tag] for tag in tags if tag in ranking), default=None)
        if wheel_rank is not None and (best is None or wheel_rank < best[0]):
            best = (wheel_rank, wheel)
    if best is None:
        raise PackagingError(
            f"uv.lock offers no wheel of {package['name']} {package['version']} for CPython 3.13 on "
            f"Linux {architecture}; SOAR installs wheels only."
        )
    return best[1]


# --- getting the wheels: wheelhouse and registry ------------------------------------------------


def wheel_bytes(wheel: LockedWheel, wheelhouse: Path, *, fetch: bool) -> bytes:
    """The wheel from the wheelhouse (downloaded first when ``fetch``), checked against uv.lock."""
    path = wheelhouse / wheel.filename
    if not path.exists():
        if not fetch:
            raise PackagingError(
                f"{wheel.filename} is not in {wheelhouse}; run `python3 soar/tasks.py setup` "
                "(or this script with --fetch) once with access to the package registry."
            )
        _download(wheel, path)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != wheel.sha256:
        raise PackagingError(
            f"{path} does not match the sha256 uv.lock records for it; delete it and fetch again."
        )
    return data


def _download(wheel: LockedWheel, path: Path) -> None:
    if not wheel.url.startswith("https://"):
        raise PackagingError(f"refusing to download {wheel.filename} from a non-https URL")
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _FETCH_ATTEMPTS + 1):
        try:
            # The URL comes from uv.lock and is https, checked above.
            with urllib.request.urlopen(wheel.url, timeout=_FETCH_TIMEOUT) as response:  # noqa: S310
                data = response.read()
        except OSError as error:
            if attempt == _FETCH_ATTEMPTS:
                raise PackagingError(f"could not download {wheel.filename}: {error}") from None
            time.sleep(2.0 * attempt)
            continue
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
        return


def fetch_all(dependencies: Iterable[Dependency], wheelhouse: Path) -> int:
    """Download every wheel not yet in the wheelhouse; returns how many were downloaded."""
    downloaded = 0
    for dependency in dependencies:
        for wheel in {wheel.filename: wheel for wheel in dependency.wheels.values()}.values():
            if not (wheelhouse / wheel.filename).exists():
                wheel_bytes(wheel, wheelhouse, fetch=True)
                downloaded += 1
    return downloaded


def build_local_wheel(output_directory: Path) -> Path:
    """The ``mde-file-alerts`` wheel from lib/, built with the hatchling installed in this venv."""
    builder = build.ProjectBuilder(LOCAL_DISTRIBUTION_DIR, python_executable=sys.executable)
    return Path(builder.build("wheel", output_directory))


# --- the package -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundledWheel:
    archive_path: str
    data: bytes


def manifest_and_wheels(
    wheelhouse: Path, *, fetch: bool, work_directory: Path
) -> tuple[dict[str, Any], list[BundledWheel]]:
    """The app manifest (as ``soarapps package build`` writes it) and the wheels it names."""
    processor = ManifestProcessor("manifest.json", str(SOAR_DIR))
    meta = processor.load_toml_app_meta()
    app = processor.import_app_instance(meta)
    meta.configuration = app.asset_cls.to_json_schema()
    meta.actions = app.actions_manager.get_actions_meta_list()
    meta.utctime_updated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for field, value in app.app_meta_info.items():
        setattr(meta, field, value)

    dependencies, local = locked_dependencies(meta.project_name)
    if local != ["mde-file-alerts"]:
        raise PackagingError(f"unexpected local dependencies in uv.lock: {local}")

    entries: list[Any] = []
    bundled: list[BundledWheel] = []
    local_wheel = build_local_wheel(work_directory)
    shared_path = f"wheels/shared/{local_wheel.name}"
    entries.append(
        DependencyWheel(module="mde-file-alerts", input_file=shared_path, input_file_aarch64=shared_path)
    )
    bundled.append(BundledWheel(shared_path, local_wheel.read_bytes()))
    for dependency in dependencies:
        folder = "shared" if dependency.is_pure else "python313"
        paths = {arch: f"wheels/{folder}/{wheel.filename}" for arch, wheel in dependency.wheels.items()}
        entries.append(
            DependencyWheel(
                module=dependency.name, input_file=paths["x86_64"], input_file_aarch64=paths["aarch64"]
            )
        )
        for architecture, wheel in dependency.wheels.items():
            if architecture == "x86_64" or not dependency.is_pure:
                bundled.append(BundledWheel(paths[architecture], wheel_bytes(wheel, wheelhouse, fetch=fetch)))
    meta.pip313_dependencies = DependencyList(wheel=entries)
    return meta.to_json_manifest(), bundled


def write_package(output: Path, wheelhouse: Path, *, fetch: bool) -> Path:
    """Write the app .tgz: logos, src/, the SDK's base template, wheels and manifest.json."""
    with tempfile.TemporaryDirectory(prefix="soar-package-") as work:
        manifest, wheels = manifest_and_wheels(wheelhouse, fetch=fetch, work_directory=Path(work))
    top = manifest["name"]
    output.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(output, "w:gz") as archive:
        for name in (manifest["logo"], manifest["logo_dark"]):
            _add_file(archive, f"{top}/{name}", (SOAR_DIR / name).read_bytes())
        for source in sorted((SOAR_DIR / "src").rglob("*.py")):
            if "__pycache__" not in source.parts:
                _add_file(archive, f"{top}/{source.relative_to(SOAR_DIR).as_posix()}", source.read_bytes())
        base_template = SDK_TEMPLATES / "base" / "base_template.html"
        _add_file(archive, f"{top}/templates/base/base_template.html", base_template.read_bytes())
        for wheel in wheels:
            _add_file(archive, f"{top}/{wheel.archive_path}", wheel.data)
        _add_file(archive, f"{top}/manifest.json", json.dumps(manifest, indent=4).encode())
    return output


def _add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


def project() -> dict[str, Any]:
    """The ``[project]`` table of soar/pyproject.toml."""
    with (SOAR_DIR / "pyproject.toml").open("rb") as pyproject:
        table: dict[str, Any] = tomllib.load(pyproject)["project"]
    return table


def locked_dependencies(root: str) -> tuple[list[Dependency], list[str]]:
    """``runtime_dependencies`` of soar/uv.lock, with the SDK's lists of provided and banned packages."""
    with (SOAR_DIR / "uv.lock").open("rb") as lock_file:
        lock = tomllib.load(lock_file)
    return runtime_dependencies(lock, root, provided=DEPENDENCIES_TO_SKIP, rejected=DEPENDENCIES_TO_REJECT)


def default_output() -> Path:
    metadata = project()
    return ROOT / "dist" / f"{metadata['name']}-{metadata['version']}.tgz"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=None, help="the .tgz to write")
    parser.add_argument("--wheelhouse", type=Path, default=DEFAULT_WHEELHOUSE)
    parser.add_argument("--fetch", action="store_true", help="download missing wheels (needs the registry)")
    parser.add_argument("--fetch-only", action="store_true", help="only fill the wheelhouse")
    arguments = parser.parse_args(argv)
    try:
        if arguments.fetch_only:
            dependencies, _ = locked_dependencies(project()["name"])
            count = fetch_all(dependencies, arguments.wheelhouse)
            print(f"{arguments.wheelhouse}: {count} wheels downloaded for {len(dependencies)} dependencies")
            return 0
        output = write_package(
            arguments.output or default_output(), arguments.wheelhouse, fetch=arguments.fetch
        )
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
