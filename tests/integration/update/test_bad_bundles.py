"""Bad update bundles against the real `rauc`: every one is refused before anything is
written, with an error that says what is wrong.

Real verity bundles are made in tmp_path by image/bundle's own make_bundle (the vendor
path, with --root/--boot files instead of a built image): a small squashfs holding
usr/lib/vigil/build.json and a small vfat boot partition, signed with the development
key, or with tests/image/keys/unknown.* for a signer the keyring does not know. RAUC checks
them against a test system.conf whose keyring is the development CA.
"""

import configparser
import importlib.machinery
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.core.commands import run_command
from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.update import rauc_config
from appliance.update.rauc import Rauc
from appliance.update.service import UpdateService
from appliance.update.store import UpdateStore
from appliance.update.versions import Release

REPO = Path(__file__).resolve().parents[3]
DEV_KEYS = REPO / "image/keys/development"
UNKNOWN_KEYS = REPO / "tests/image/keys"
COMPATIBLE = "vigil-nvr-arm64"
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
TOOLS = ("rauc", "mksquashfs", "unsquashfs", "mkfs.vfat")


def tool(name):
    return shutil.which(name) or shutil.which(name, path=SBIN)


missing = [name for name in TOOLS if not tool(name)]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (make test installs them)")


def load_bundle_tool():
    """image/bundle is a script without .py: loaded by path, as the vendor runs it."""
    loader = importlib.machinery.SourceFileLoader("vigil_image_bundle", str(REPO / "image/bundle"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bundle_tool():
    return load_bundle_tool()


# --- making bundles ------------------------------------------------------------------------------

def root_squashfs(work, version, build):
    """A root file system that is only its build.json and ~300 KB of incompressible data:
    a verity bundle's payload must be larger than one 4096-byte hash block."""
    image = work / f"root-{version}-{build}.squashfs"
    if image.exists():
        return image
    tree = work / f"root-{version}-{build}"
    (tree / "usr/lib/vigil").mkdir(parents=True)
    (tree / "usr/lib/vigil/build.json").write_text(json.dumps(
        {"version": version, "source_date_epoch": build, "commit": "0123abc", "rauc_compatible": COMPATIBLE}))
    (tree / "usr/lib/vigil/padding").write_bytes(random.Random(build).randbytes(300_000))
    squash(tree, image)
    return image


def squash(tree, image):
    subprocess.run([tool("mksquashfs"), str(tree), str(image), "-noappend", "-all-root", "-quiet",
                    "-no-progress", "-mkfs-time", "0", "-all-time", "0"], check=True, timeout=120,
                   capture_output=True)


def boot_vfat(work):
    image = work / "boot.vfat"
    if not image.exists():
        subprocess.run([tool("mkfs.vfat"), "-C", "-i", "56494732", str(image), "1024"], check=True,
                       timeout=60, capture_output=True)
    return image


def signed_bundle(bundle_tool, work, name, version="0.3.0", build=300, compatible=COMPATIBLE,
                  keys=(DEV_KEYS / "signing.cert.pem", DEV_KEYS / "signing.key.pem")):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VIGIL_SIGNING_CERT", str(keys[0]))
        env.setenv("VIGIL_SIGNING_KEY", str(keys[1]))
        return bundle_tool.make_bundle(root_squashfs(work, version, build), boot_vfat(work),
                                       work / "bundles", compatible, name)


def unsigned_bundle(work):
    """What a plain bundle is before `rauc bundle` signs it: the squashed content
    directory (manifest and images) with no signature after it."""
    content = work / "unsigned-content"
    content.mkdir()
    shutil.copyfile(root_squashfs(work, "0.3.0", 301), content / "root.squashfs")
    shutil.copyfile(boot_vfat(work), content / "boot.vfat")
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={COMPATIBLE}\nversion=0.3.0\nbuild=301\n\n"
        "[image.rootfs]\nfilename=root.squashfs\n\n[image.boot]\nfilename=boot.vfat\n")
    image = work / "bundles/unsigned.raucb"
    squash(content, image)
    return image


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, bundle_tool):
    work = tmp_path_factory.mktemp("bundles")
    made = {
        "good": signed_bundle(bundle_tool, work, "good.raucb"),
        "unknown-signer": signed_bundle(bundle_tool, work, "unknown-signer.raucb",
                                        keys=(UNKNOWN_KEYS / "unknown.cert.pem", UNKNOWN_KEYS / "unknown.key.pem")),
        "other-product": signed_bundle(bundle_tool, work, "other-product.raucb", compatible="vigil-nvr-amd64"),
        "older": signed_bundle(bundle_tool, work, "older.raucb", version="0.1.0", build=50),
        "same": signed_bundle(bundle_tool, work, "same.raucb", version="0.2.0", build=100),
        "unsigned": unsigned_bundle(work),
    }
    good = made["good"].read_bytes()
    made["truncated"] = work / "bundles/truncated.raucb"
    made["truncated"].write_bytes(good[:len(good) // 2])
    made["appended"] = work / "bundles/appended.raucb"
    made["appended"].write_bytes(good + b"junk")
    return made


# --- the box that checks them --------------------------------------------------------------------

class RecordingRunner:
    """The real runner, remembering every command it ran."""

    def __init__(self):
        self.argv = []

    def __call__(self, argv, *, timeout, input=None):
        self.argv.append(list(argv))
        return run_command(argv, timeout=timeout, input=input)


def system_conf(path, data_dir):
    path.write_text(f"[system]\ncompatible={COMPATIBLE}\nbootloader=noop\nbundle-formats=-plain\n"
                    f"data-directory={data_dir}\n\n[keyring]\npath={DEV_KEYS / 'ca.cert.pem'}\n")
    return path


class Box:
    """A box running 0.2.0 (build 100) from slot A, checking bundles with the real rauc."""

    def __init__(self, tmp_path, **service_options):
        (tmp_path / "build.json").write_text(json.dumps(
            {"version": "0.2.0", "source_date_epoch": 100, "commit": "0123abc", "rauc_compatible": COMPATIBLE}))
        (tmp_path / "cmdline").write_text("console=ttyAMA0 root=PARTLABEL=vigil-root-a rauc.slot=A ro\n")
        self.runner = RecordingRunner()
        conf = system_conf(tmp_path / "system.conf", tmp_path / "rauc-data")
        self.store = UpdateStore(tmp_path / "persist/update")
        # check_bundle never asks the health probes.
        self.service = UpdateService(Rauc(self.runner, executable=tool("rauc"), conf=conf), self.store,
                                     None, build_json=tmp_path / "build.json",
                                     cmdline=tmp_path / "cmdline", **service_options)


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def test_a_good_newer_bundle_passes_with_its_version(box, bundles):
    checked = box.service.check_bundle(bundles["good"])
    assert (checked["version"], checked["build"], checked["compatible"]) == ("0.3.0", 300, COMPATIBLE)
    assert checked["description"] == "Vigil NVR 0.3.0 (0123abc)"
    assert checked["bytes"] == bundles["good"].stat().st_size
    assert [argv[-3:] for argv in box.runner.argv] == [["info", "--output-format=json", str(bundles["good"])]]


@pytest.mark.parametrize("name, says", [
    ("unsigned", "signature"),
    ("unknown-signer", "signature verification failed"),
    ("truncated", "signature"),
    ("appended", "signature"),
])
def test_a_bundle_rauc_cannot_verify_is_refused_with_rauc_s_reason(box, bundles, name, says):
    with pytest.raises(InvalidConfig) as refused:
        box.service.check_bundle(bundles[name])
    message = str(refused.value)
    assert message.startswith("not a valid update bundle: ")
    assert says in message.lower()
    assert "rauc-Message" not in message and "Reading bundle" not in message


def test_a_bundle_for_another_product_is_refused(box, bundles):
    with pytest.raises(InvalidConfig, match=r"this bundle is for 'vigil-nvr-amd64', not this box "
                                            r"\('vigil-nvr-arm64'\)"):
        box.service.check_bundle(bundles["other-product"])


def test_an_older_release_is_refused(box, bundles):
    with pytest.raises(InvalidConfig, match=r"bundle 0.1.0 \(build 50\) is older than the running "
                                            r"0.2.0 \(build 100\): downgrades are refused"):
        box.service.check_bundle(bundles["older"])


def test_a_release_older_than_the_floor_is_refused(box, bundles):
    box.store.raise_floor(Release.parse("0.4.0", 1))
    with pytest.raises(InvalidConfig, match=r"older than 0.4.0 \(build 1\), the newest release this box has run"):
        box.service.check_bundle(bundles["good"])


def test_the_running_release_is_not_installed_again(box, bundles):
    with pytest.raises(FailedPrecondition, match=r"0.2.0 \(build 100\) is the release already running"):
        box.service.check_bundle(bundles["same"])


def test_an_oversized_bundle_is_refused_without_running_rauc(tmp_path, bundles):
    size = bundles["good"].stat().st_size
    box = Box(tmp_path, max_bundle_bytes=size - 1)
    with pytest.raises(InvalidConfig, match="MiB an update can be"):
        box.service.check_bundle(bundles["good"])
    assert box.runner.argv == []


def test_nothing_is_written_by_a_check(box, bundles):
    for name in ("good", "unknown-signer", "older"):
        try:
            box.service.check_bundle(bundles[name])
        except InvalidConfig:
            pass
    assert not box.store.dir.exists()


@pytest.mark.parametrize("backend", sorted(rauc_config.BACKENDS))
def test_rauc_accepts_the_system_conf_the_box_writes(tmp_path, bundles, backend):
    conf = tmp_path / "system.conf"
    conf.write_text(rauc_config.render(COMPATIBLE, backend, keyring=DEV_KEYS / "ca.cert.pem",
                                       data_dir=tmp_path / "rauc-data"))
    info = Rauc(executable=tool("rauc"), conf=conf).info(bundles["good"])
    assert (info.compatible, info.version, info.build) == (COMPATIBLE, "0.3.0", "300")


# --- image/bundle itself ---------------------------------------------------------------------------

def test_the_bundle_script_makes_a_bundle_the_box_accepts(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run([sys.executable, str(REPO / "image/bundle"), "--root", str(root_squashfs(work, "0.3.1", 310)),
                          "--boot", str(boot_vfat(work)), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{SBIN}"})
    assert out.returncode == 0, out.stderr
    bundle = Path(out.stdout.strip())
    assert bundle == tmp_path / "out/vigil-0.3.1-arm64.raucb"
    assert "DEVELOPMENT key" in out.stderr
    box = Box(tmp_path)
    assert box.service.check_bundle(bundle)["version"] == "0.3.1"


def test_the_manifest_names_the_release_verity_and_the_boot_hook(bundle_tool):
    text = bundle_tool.manifest(COMPATIBLE, {"version": "0.3.0", "source_date_epoch": 1_800_000_000,
                                            "commit": "0123abc"})
    manifest = configparser.ConfigParser(interpolation=None)
    manifest.read_string(text)
    assert dict(manifest["update"]) == {"compatible": COMPATIBLE, "version": "0.3.0", "build": "1800000000",
                                        "description": "Vigil NVR 0.3.0 (0123abc)"}
    assert manifest["bundle"]["format"] == "verity"
    assert manifest["hooks"]["filename"] == "hook"
    # RAUC writes an image into a raw slot only if its name ends in .img.
    assert manifest["image.rootfs"]["filename"].endswith(".img")
    assert dict(manifest["image.boot"]) == {"filename": "boot.vfat", "hooks": "post-install"}


def run_hook(bundle_tool, tmp_path, cmdline, hook_type="slot-post-install", **env):
    """The bundle hook as RAUC runs it, on a boot slot's files in tmp_path/mnt."""
    hook = tmp_path / "hook"
    hook.write_text(bundle_tool.HOOK)
    mount = tmp_path / "mnt"
    mount.mkdir()
    (mount / "cmdline.txt").write_text(cmdline)
    result = subprocess.run(["sh", str(hook), hook_type], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "RAUC_SLOT_MOUNT_POINT": str(mount), **env})
    return result, mount


IMAGE_CMDLINE = (REPO / "image/boot/cmdline.txt").read_text()


def test_the_hook_points_boot_b_at_root_b(bundle_tool, tmp_path):
    assert "root=PARTLABEL=vigil-root-a" in IMAGE_CMDLINE and "rauc.slot=A" in IMAGE_CMDLINE
    result, mount = run_hook(bundle_tool, tmp_path, IMAGE_CMDLINE, RAUC_SLOT_CLASS="boot",
                             RAUC_SLOT_NAME="boot.1")
    assert result.returncode == 0, result.stderr
    assert (mount / "cmdline.txt").read_text() == IMAGE_CMDLINE.replace(
        "root=PARTLABEL=vigil-root-a", "root=PARTLABEL=vigil-root-b").replace("rauc.slot=A", "rauc.slot=B")
    assert [p.name for p in mount.iterdir()] == ["cmdline.txt"]


def test_the_hook_points_boot_a_at_root_a(bundle_tool, tmp_path):
    on_b = IMAGE_CMDLINE.replace("vigil-root-a", "vigil-root-b").replace("rauc.slot=A", "rauc.slot=B")
    result, mount = run_hook(bundle_tool, tmp_path, on_b, RAUC_SLOT_CLASS="boot", RAUC_SLOT_NAME="boot.0")
    assert result.returncode == 0, result.stderr
    assert (mount / "cmdline.txt").read_text() == IMAGE_CMDLINE


@pytest.mark.parametrize("hook_type, slot_class", [("slot-post-install", "rootfs"),
                                                    ("slot-pre-install", "boot")])
def test_the_hook_leaves_other_slots_and_hooks_alone(bundle_tool, tmp_path, hook_type, slot_class):
    result, mount = run_hook(bundle_tool, tmp_path, IMAGE_CMDLINE, hook_type, RAUC_SLOT_CLASS=slot_class,
                             RAUC_SLOT_NAME="boot.1" if slot_class == "boot" else "rootfs.1")
    assert result.returncode == 0, result.stderr
    assert (mount / "cmdline.txt").read_text() == IMAGE_CMDLINE


def test_the_hook_fails_the_install_for_an_unknown_boot_slot(bundle_tool, tmp_path):
    result, mount = run_hook(bundle_tool, tmp_path, IMAGE_CMDLINE, RAUC_SLOT_CLASS="boot",
                             RAUC_SLOT_NAME="boot.2")
    assert result.returncode == 1
    assert "unknown boot slot boot.2" in result.stderr
    assert (mount / "cmdline.txt").read_text() == IMAGE_CMDLINE
