"""The SOAR app package: manifest, contains types, and the wheels it bundles, built offline."""

from __future__ import annotations

import inspect
import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from soar import package
from soar.src.app import create_app

ROOT = Path(__file__).resolve().parents[2]


def lock_package(name: str, *wheels: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0",
        "source": {"registry": "https://pypi.org/simple"},
        "wheels": [
            {"url": f"https://files.example/{wheel}", "hash": f"sha256:{index:064x}"}
            for index, wheel in enumerate(wheels)
        ],
        **extra,
    }


SYNTHETIC_LOCK: dict[str, Any] = {
    "package": [
        {
            "name": "app",
            "version": "1.0",
            "source": {"virtual": "."},
            "dependencies": [
                {"name": "local-lib"},
                {"name": "crypto-lib"},
                {"name": "windows-only", "marker": "sys_platform == 'win32'"},
            ],
            "dev-dependencies": {"dev": [{"name": "test-tool"}]},
        },
        {
            "name": "local-lib",
            "source": {"directory": "local-lib"},
            "dependencies": [{"name": "requests"}, {"name": "jwt-lib", "extra": ["crypto"]}],
        },
        lock_package(
            "crypto-lib",
            "crypto_lib-1.0-cp311-abi3-manylinux_2_28_x86_64.whl",
            "crypto_lib-1.0-cp311-abi3-manylinux_2_28_aarch64.whl",
            "crypto_lib-1.0-cp311-abi3-macosx_11_0_arm64.whl",
            "crypto_lib-1.0-cp39-abi3-manylinux2014_x86_64.whl",
        ),
        lock_package(
            "jwt-lib",
            "jwt_lib-1.0-py3-none-any.whl",
            **{"optional-dependencies": {"crypto": [{"name": "crypto-lib"}, {"name": "ffi-lib"}]}},
        ),
        lock_package(
            "ffi-lib",
            "ffi_lib-1.0-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
            "ffi_lib-1.0-py3-none-any.whl",
        ),
        lock_package("requests", "requests-1.0-py3-none-any.whl"),
        lock_package("windows-only", "windows_only-1.0-py3-none-any.whl"),
        lock_package("test-tool", "test_tool-1.0-py3-none-any.whl"),
    ]
}


def test_dependencies_follow_extras_and_markers_and_skip_what_soar_provides() -> None:
    bundled, local = package.runtime_dependencies(
        SYNTHETIC_LOCK, "app", provided={"requests"}, rejected=set()
    )

    assert local == ["local-lib"]
    assert [dependency.name for dependency in bundled] == ["crypto-lib", "ffi-lib", "jwt-lib"]


def test_wheels_are_chosen_per_architecture_for_cpython_313() -> None:
    bundled, _ = package.runtime_dependencies(SYNTHETIC_LOCK, "app", provided={"requests"}, rejected=set())
    chosen = {dependency.name: dependency for dependency in bundled}

    # An abi3 wheel built for an older CPython suits 3.13; the newest glibc level comes first.
    assert chosen["crypto-lib"].wheels["x86_64"].filename.endswith("manylinux_2_28_x86_64.whl")
    assert chosen["crypto-lib"].wheels["aarch64"].filename.endswith("manylinux_2_28_aarch64.whl")
    # Compiled where there is a wheel for the architecture, pure Python where there is none.
    assert chosen["ffi-lib"].wheels["x86_64"].filename.startswith("ffi_lib-1.0-cp313-cp313-manylinux")
    assert chosen["ffi-lib"].wheels["aarch64"].filename == "ffi_lib-1.0-py3-none-any.whl"
    assert chosen["jwt-lib"].is_pure and not chosen["crypto-lib"].is_pure


def test_a_banned_dependency_stops_the_build() -> None:
    with pytest.raises(package.PackagingError, match="crypto-lib must not be bundled"):
        package.runtime_dependencies(SYNTHETIC_LOCK, "app", provided=set(), rejected={"crypto-lib"})


def test_a_dependency_without_a_linux_wheel_is_named() -> None:
    lock = {
        "package": [
            {"name": "app", "version": "1.0", "source": {"virtual": "."}, "dependencies": [{"name": "mac"}]},
            lock_package("mac", "mac-1.0-cp313-cp313-macosx_11_0_arm64.whl"),
        ]
    }

    with pytest.raises(
        package.PackagingError, match=r"no wheel of mac 1\.0 for CPython 3\.13 on Linux x86_64"
    ):
        package.runtime_dependencies(lock, "app", provided=set(), rejected=set())


def test_a_missing_wheel_is_reported_with_the_setup_command(tmp_path: Path) -> None:
    wheel = package.LockedWheel("absent-1.0-py3-none-any.whl", "https://files.example/absent", "0" * 64)

    with pytest.raises(package.PackagingError, match=r"soar/tasks\.py setup"):
        package.wheel_bytes(wheel, tmp_path, fetch=False)


def test_a_wheel_that_does_not_match_the_lock_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tampered-1.0-py3-none-any.whl").write_bytes(b"not the locked wheel")
    wheel = package.LockedWheel("tampered-1.0-py3-none-any.whl", "https://files.example/tampered", "0" * 64)

    with pytest.raises(package.PackagingError, match="does not match the sha256"):
        package.wheel_bytes(wheel, tmp_path, fetch=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tarfile.TarFile:
    """The package, built from the wheelhouse that ``soar/tasks.py setup`` fills (no network)."""
    output = tmp_path_factory.mktemp("soar-package") / "app.tgz"
    package.write_package(output, package.DEFAULT_WHEELHOUSE, fetch=False)
    return tarfile.open(output)


def manifest_of(archive: tarfile.TarFile) -> dict[str, Any]:
    member = next(name for name in archive.getnames() if name.endswith("/manifest.json"))
    extracted = archive.extractfile(member)
    assert extracted is not None
    manifest: dict[str, Any] = json.load(extracted)
    return manifest


def action(manifest: dict[str, Any], identifier: str) -> dict[str, Any]:
    return next(entry for entry in manifest["actions"] if entry["identifier"] == identifier)


def test_the_manifest_describes_the_app_asset_and_actions(built: tarfile.TarFile) -> None:
    manifest = manifest_of(built)

    assert manifest["main_module"] == "src.app:app"
    assert manifest["python_version"] == "3.13"
    assert manifest["configuration"]["client_secret"]["data_type"] == "password"
    assert manifest["configuration"]["proxy_password"]["data_type"] == "password"
    assert manifest["configuration"]["cloud"]["default"] == "commercial"
    assert [entry["identifier"] for entry in manifest["actions"]] == ["test_connectivity", "get_file_alerts"]
    parameters = action(manifest, "get_file_alerts")["parameters"]
    assert parameters["hash"]["contains"] == ["sha1", "hash"]
    assert parameters["hash"]["primary"] is True


def test_output_data_paths_carry_the_contains_types_playbooks_chain_on(built: tarfile.TarFile) -> None:
    outputs = action(manifest_of(built), "get_file_alerts")["output"]
    contains = {entry["data_path"]: entry.get("contains", []) for entry in outputs}

    alert = "action_result.data.*.alerts.*"
    assert contains[f"{alert}.alert_id"] == ["defender atp alert id"]
    assert contains[f"{alert}.device_id"] == ["defender atp device id"]
    assert contains[f"{alert}.device_name"] == ["host name"]
    assert contains[f"{alert}.user_name"] == ["user name"]
    assert contains[f"{alert}.file_names.*"] == ["file name"]
    assert contains[f"{alert}.file_paths.*"] == ["file path"]
    assert contains[f"{alert}.evidence_sha256.*"] == ["sha256", "hash"]
    assert contains["action_result.data.*.sha1"] == ["sha1", "hash"]
    assert contains["action_result.data.*.sha256"] == ["sha256", "hash"]
    assert {"action_result.summary.total_alerts", "action_result.summary.high"} <= set(contains)


def test_every_declared_wheel_is_in_the_package_with_lib_as_mde_file_alerts(built: tarfile.TarFile) -> None:
    manifest = manifest_of(built)
    top = manifest["name"]
    names = set(built.getnames())

    entries = manifest["pip313_dependencies"]["wheel"]
    for entry in entries:
        assert f"{top}/{entry['input_file']}" in names
        assert f"{top}/{entry['input_file_aarch64']}" in names
    modules = {entry["module"] for entry in entries}
    assert {"mde-file-alerts", "splunk-soar-sdk", "msal", "jsonschema", "cryptography"} <= modules
    # requests and its dependencies come with the SOAR platform.
    assert "requests" not in modules and "urllib3" not in modules

    [local] = [entry for entry in entries if entry["module"] == "mde-file-alerts"]
    wheel_member = built.extractfile(f"{top}/{local['input_file']}")
    assert wheel_member is not None
    with zipfile.ZipFile(io.BytesIO(wheel_member.read())) as wheel:
        packaged = {
            name.removeprefix("mde_file_alerts/")
            for name in wheel.namelist()
            if name.startswith("mde_file_alerts/")
        }
    from_lib = {
        path.relative_to(ROOT / "lib" / "mde_file_alerts").as_posix()
        for path in (ROOT / "lib" / "mde_file_alerts").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert packaged == from_lib | {"py.typed"}


def test_the_package_holds_the_app_source_and_nothing_compiled(built: tarfile.TarFile) -> None:
    top = manifest_of(built)["name"]
    names = built.getnames()

    for module in ("__init__", "app", "actions", "asset", "connection", "outputs"):
        assert f"{top}/src/{module}.py" in names
    assert f"{top}/logo.svg" in names and f"{top}/logo_dark.svg" in names
    assert f"{top}/templates/base/base_template.html" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_no_action_function_is_named_like_a_test() -> None:
    # The SDK marks functions named test_* as pytest tests to skip, and pytest would collect them.
    functions = {name: inspect.unwrap(handler) for name, handler in create_app().get_actions().items()}

    assert functions["test_connectivity"].__name__ == "check_connectivity"
    assert not [name for name, function in functions.items() if function.__name__.startswith("test_")]
