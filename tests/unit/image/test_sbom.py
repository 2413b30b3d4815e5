"""image/tools/sbom.py: the SPDX bill of materials of a root file system, on small fake roots."""

from __future__ import annotations

import email.parser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "image" / "tools" / "sbom.py"
_spec = importlib.util.spec_from_file_location("vigil_image_sbom", SCRIPT)
sbom = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sbom)

CREATED = "2026-11-24T00:00:00Z"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

STATUS = [
    """\
    Package: bash
    Status: install ok installed
    Priority: required
    Architecture: arm64
    Version: 5.2.37-2
    Description: GNU Bourne Again SHell
     Bash is an sh-compatible command language interpreter.
     .
     It also has a Description with continuation lines: Like: this.
    """,
    """\
    Package: zlib1g
    Status: install ok installed
    Architecture: arm64
    Source: zlib (1:1.3.dfsg+really1.3.1-1)
    Version: 1:1.3.dfsg+really1.3.1-1+b1
    """,
    """\
    Package: gcc-14-base
    Status: install ok installed
    Architecture: arm64
    Source: gcc-14
    Version: 14.2.0-19
    """,
    """\
    Package: libgcc-s1
    Status: install ok installed
    Architecture: arm64
    Source: gcc-14 (14.2.0-19)
    Version: 14.2.0-19
    """,
    """\
    Package: libstdc++6
    Status: install ok installed
    Architecture: arm64
    Source: gcc-14
    Version: 14.2.0-19
    """,
    """\
    Package: libfoo
    Status: install ok installed
    Architecture: all
    Version: 2.0-1
    """,
    """\
    Package: mawk
    Status: hold ok installed
    Architecture: arm64
    Version: 1.3.4.20250131-1
    """,
    """\
    Package: tzdata
    Status: install ok installed
    Architecture: all
    Version: 2025b-4
    """,
    """\
    Package: oldpkg
    Status: deinstall ok config-files
    Architecture: arm64
    Version: 1.0-1
    """,
]

DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
COPYRIGHT = {
    "bash": DEP5 + textwrap.dedent("""\
        Files: *
        Copyright: 1987-2024 Free Software Foundation, Inc.
        License: GPL-3+

        Files: lib/glob/*
        Copyright: 1991 The Regents of the University of California
        License: GPL-2+ or BSD-3-clause

        License: Artistic
         A stand-alone licence text stanza: not a Files stanza, so not counted.
        """),
    "zlib1g": "This is the Debian prepackaged version of the zlib compression library.\n"
              "Copyright (C) 1995-2024 Jean-loup Gailly and Mark Adler\n",
    "gcc-14-base": DEP5 + "Files: *\nCopyright: FSF\nLicense: GPL-3+\n",
    "tzdata": DEP5 + "Files: *\nLicense: public-domain\n\nFiles: debian/*\nLicense: GPL-2\n",
}
# libstdc++6 reaches gcc-14-base through libgcc-s1; mawk has no doc dir at all.
DOC_SYMLINKS = {"libgcc-s1": "gcc-14-base", "libstdc++6": "libgcc-s1", "libfoo": "bash"}

METADATA = {
    "Jinja2-3.1.6.dist-info": "Metadata-Version: 2.4\nName: Jinja2\nVersion: 3.1.6\n"
                              "License-Expression: BSD-3-Clause\n\nLong description.\n",
    "typing_extensions-4.15.0.dist-info":
        "Metadata-Version: 2.1\nName: typing_extensions\nVersion: 4.15.0\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Classifier: License :: OSI Approved :: Python Software Foundation License\n",
    "zope.interface-7.2.dist-info":
        "Metadata-Version: 2.1\nName: zope.interface\nVersion: 7.2\nLicense: ZPL 2.1\n"
        "Classifier: License :: OSI Approved :: Zope Public License\n",
}


def make_root(root: Path, reverse: bool = False) -> Path:
    """A fake built root; REVERSE writes the status stanzas and dist-info dirs in the
    opposite order, which must not change the document."""
    order = (lambda items: list(reversed(items))) if reverse else list
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "\n".join(textwrap.dedent(s) for s in order(STATUS)))
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n'
                                             "VERSION_CODENAME=trixie\nID=debian\n")
    (root / "etc").mkdir()
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    doc = root / "usr/share/doc"
    for package, text in order(list(COPYRIGHT.items())):
        (doc / package).mkdir(parents=True)
        (doc / package / "copyright").write_text(text)
    for package, target in DOC_SYMLINKS.items():
        (doc / package).symlink_to(target)
    site = root / "opt/vigil/venv/lib/python3.13/site-packages"
    for dist_info, text in order(list(METADATA.items())):
        (site / dist_info).mkdir(parents=True)
        (site / dist_info / "METADATA").write_text(text)
    return root


def run_sbom(root: Path, *extra: str) -> subprocess.CompletedProcess:
    """The script as the build runs it; -I -S keeps site-packages away, so it must get
    by on the standard library like the build machine's python3."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), "--root", str(root),
         "--name", "vigil-0.1.0-arm64", "--commit", COMMIT, "--created", CREATED, *extra],
        capture_output=True, text=True, check=False)


@pytest.fixture
def document(tmp_path) -> dict:
    out = tmp_path / "sbom.spdx.json"
    result = run_sbom(make_root(tmp_path / "root"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def packages_by_id(document: dict) -> dict:
    return {p["SPDXID"]: p for p in document["packages"]}


def purl_of(package: dict) -> str:
    [ref] = package["externalRefs"]
    assert ref["referenceCategory"] == "PACKAGE-MANAGER" and ref["referenceType"] == "purl"
    return ref["referenceLocator"]


def test_document_header_and_describes_every_package(document):
    assert document["spdxVersion"] == "SPDX-2.3"
    assert document["dataLicense"] == "CC0-1.0"
    assert document["SPDXID"] == "SPDXRef-DOCUMENT"
    assert document["name"] == "vigil-0.1.0-arm64"
    assert document["documentNamespace"] == \
        f"https://vigil-nvr.invalid/spdx/vigil-0.1.0-arm64-{COMMIT}"
    assert document["creationInfo"] == {"created": CREATED,
                                        "creators": ["Tool: vigil-image-sbom"]}
    ids = [p["SPDXID"] for p in document["packages"]]
    assert ids == sorted(ids)
    assert document["relationships"] == [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
         "relatedSpdxElement": ident} for ident in ids]


def test_installed_debian_and_python_packages_are_listed(document):
    assert sorted(packages_by_id(document)) == [
        "SPDXRef-deb-bash-arm64", "SPDXRef-deb-gcc-14-base-arm64", "SPDXRef-deb-libfoo-all",
        "SPDXRef-deb-libgcc-s1-arm64", "SPDXRef-deb-libstdc--6-arm64",
        "SPDXRef-deb-mawk-arm64",                                   # held, still installed
        "SPDXRef-deb-tzdata-all", "SPDXRef-deb-zlib1g-arm64",      # no oldpkg: deinstalled
        "SPDXRef-pypi-jinja2", "SPDXRef-pypi-typing-extensions", "SPDXRef-pypi-zope-interface"]


def test_debian_package_fields(document):
    zlib = packages_by_id(document)["SPDXRef-deb-zlib1g-arm64"]
    assert zlib["name"] == "zlib1g"
    assert zlib["versionInfo"] == "1:1.3.dfsg+really1.3.1-1+b1"
    assert zlib["supplier"] == "Organization: Debian"
    assert zlib["downloadLocation"] == "NOASSERTION"
    assert zlib["filesAnalyzed"] is False   # SPDX 2.3 would otherwise want a verification code
    assert zlib["sourceInfo"] == "built from Debian source package zlib 1:1.3.dfsg+really1.3.1-1"
    assert purl_of(zlib) == \
        "pkg:deb/debian/zlib1g@1%3A1.3.dfsg%2Breally1.3.1-1%2Bb1?arch=arm64&distro=trixie"
    bash = packages_by_id(document)["SPDXRef-deb-bash-arm64"]
    assert bash["sourceInfo"] == "built from Debian source package bash 5.2.37-2"
    assert purl_of(bash) == "pkg:deb/debian/bash@5.2.37-2?arch=arm64&distro=trixie"


@pytest.mark.parametrize("name, version, qualifiers, expected", [
    ("libstdc++6", "14.2.0-19", {"arch": "arm64", "distro": "trixie"},
     "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=arm64&distro=trixie"),
    ("systemd", "1:257.7~rc1-1", {"distro": "trixie", "arch": "arm64"},
     "pkg:deb/debian/systemd@1%3A257.7~rc1-1?arch=arm64&distro=trixie"),
    ("tzdata", "2025b-4", {"arch": "all", "distro": None},
     "pkg:deb/debian/tzdata@2025b-4?arch=all"),
])
def test_purl_percent_encoding(name, version, qualifiers, expected):
    assert sbom.purl("deb", "debian", name, version, qualifiers) == expected


def test_dep5_licences_are_mapped_and_joined_with_and(document):
    bash = packages_by_id(document)["SPDXRef-deb-bash-arm64"]
    assert bash["licenseDeclared"] == "(GPL-2.0-or-later OR BSD-3-Clause) AND GPL-3.0-or-later"
    assert bash["licenseComments"] == "Debian licences: GPL-2+ or BSD-3-clause; GPL-3+"


def test_a_licence_without_spdx_id_leaves_the_package_unasserted(document):
    tzdata = packages_by_id(document)["SPDXRef-deb-tzdata-all"]
    assert tzdata["licenseDeclared"] == "NOASSERTION"
    assert tzdata["licenseComments"] == "Debian licences: GPL-2; public-domain"


@pytest.mark.parametrize("package, reason", [
    ("zlib1g-arm64", "copyright file is not machine-readable (DEP-5)"),
    ("mawk-arm64", "no /usr/share/doc/mawk/copyright in the image"),
    ("libfoo-all", "/usr/share/doc/libfoo is a symlink to bash, "
                   "not to another package of the same source"),
])
def test_unreadable_copyright_says_why(document, package, reason):
    entry = packages_by_id(document)[f"SPDXRef-deb-{package}"]
    assert (entry["licenseDeclared"], entry["licenseComments"]) == ("NOASSERTION", reason)


@pytest.mark.parametrize("package", ["libgcc-s1-arm64", "libstdc--6-arm64"])
def test_doc_dir_symlinks_within_one_source_package_are_followed(document, package):
    entry = packages_by_id(document)[f"SPDXRef-deb-{package}"]
    assert entry["licenseDeclared"] == "GPL-3.0-or-later"
    assert entry["licenseComments"] == \
        "read from /usr/share/doc/gcc-14-base/copyright; Debian licences: GPL-3+"


def test_doc_symlink_out_of_the_root_is_not_followed(tmp_path):
    root = make_root(tmp_path / "root")
    outside = tmp_path / "host-doc"
    outside.mkdir()
    (outside / "copyright").write_text(DEP5 + "Files: *\nLicense: Expat\n")
    link = root / "usr/share/doc/libgcc-s1"
    link.unlink()
    link.symlink_to(outside)
    sources = {"libgcc-s1": "gcc-14", "gcc-14-base": "gcc-14"}
    assert sbom.deb_licence(root, "libgcc-s1", sources) == (
        "NOASSERTION", f"/usr/share/doc/libgcc-s1 is a symlink to {outside}, "
                       "not to another package of the same source")


def test_copyright_file_symlink_is_not_followed(tmp_path):
    root = make_root(tmp_path / "root")
    outside = tmp_path / "host-copyright"
    outside.write_text(DEP5 + "Files: *\nLicense: Expat\n")
    (root / "usr/share/doc/gcc-14-base/copyright").unlink()
    (root / "usr/share/doc/gcc-14-base/copyright").symlink_to(outside)
    assert sbom.deb_licence(root, "gcc-14-base", {"gcc-14-base": "gcc-14"}) == (
        "NOASSERTION", "/usr/share/doc/gcc-14-base/copyright is a symlink")


def test_doc_symlink_loop_ends(tmp_path):
    root = make_root(tmp_path / "root")
    shutil.rmtree(root / "usr/share/doc/gcc-14-base")
    (root / "usr/share/doc/gcc-14-base").symlink_to("libgcc-s1")
    sources = {"libgcc-s1": "gcc-14", "gcc-14-base": "gcc-14"}
    assert sbom.deb_licence(root, "libgcc-s1", sources) == (
        "NOASSERTION", "/usr/share/doc/gcc-14-base is a symlink to libgcc-s1, "
                       "not to another package of the same source")


@pytest.mark.parametrize("debian, spdx", [
    ("GPL-2+", "GPL-2.0-or-later"),
    ("GPL-2", "GPL-2.0-only"),
    ("LGPL-2.1+ or BSD-3-clause", "LGPL-2.1-or-later OR BSD-3-Clause"),
    ("Expat and bsd-3-CLAUSE", "MIT AND BSD-3-Clause"),
    ("Apache-2.0", "Apache-2.0"),
    ("public-domain", None),
    ("GPL-2+ with OpenSSL exception", None),
    ("GPL-2+ or Artistic, and BSD-3-clause", None),
    ("GPL-2+ or MIT and BSD-3-clause", None),
])
def test_debian_licence_expressions(debian, spdx):
    assert sbom.spdx_from_debian_expression(debian) == spdx


def test_python_package_fields(document):
    packages = packages_by_id(document)
    jinja = packages["SPDXRef-pypi-jinja2"]
    assert (jinja["name"], jinja["versionInfo"]) == ("Jinja2", "3.1.6")
    assert jinja["licenseDeclared"] == "BSD-3-Clause"
    assert purl_of(jinja) == "pkg:pypi/jinja2@3.1.6"
    typing = packages["SPDXRef-pypi-typing-extensions"]
    assert typing["licenseDeclared"] == "PSF-2.0"
    assert typing["licenseComments"] == "Classifier: Python Software Foundation License"
    assert purl_of(typing) == "pkg:pypi/typing-extensions@4.15.0"
    zope = packages["SPDXRef-pypi-zope-interface"]
    assert zope["licenseDeclared"] == "NOASSERTION"
    assert zope["licenseComments"] == "License: ZPL 2.1; Classifier: Zope Public License"
    assert purl_of(zope) == "pkg:pypi/zope-interface@7.2"


@pytest.mark.parametrize("headers, expected", [
    ("License-Expression: Apache-2.0 OR MIT\nLicense: ignored\n",
     ("Apache-2.0 OR MIT", "License-Expression: Apache-2.0 OR MIT")),
    ("License-Expression: see LICENSE.txt!\n",
     ("NOASSERTION", "License-Expression: see LICENSE.txt!")),
    ("License: MIT\nClassifier: License :: OSI Approved :: BSD License\n",
     ("MIT", "License: MIT; Classifier: BSD License")),
    ("License: Copyright (c) 2024 Someone\n        Permission is hereby granted\n",
     ("NOASSERTION", "License: Copyright (c) 2024 Someone")),
    ("Classifier: License :: OSI Approved :: MIT License\n"
     "Classifier: License :: OSI Approved :: ISC License (ISCL)\n",
     ("NOASSERTION", "Classifier: ISC License (ISCL); Classifier: MIT License")),
    ("Summary: nothing about licences\n", ("NOASSERTION", "no licence metadata")),
])
def test_python_licence_sources(headers, expected):
    meta = email.parser.HeaderParser().parsestr("Name: x\nVersion: 1\n" + headers)
    assert sbom.python_licence(meta) == expected


def test_same_root_gives_the_same_bytes_whatever_the_input_order(tmp_path):
    outputs = []
    for run, reverse in enumerate((False, False, True)):
        out = tmp_path / f"sbom-{run}.spdx.json"
        result = run_sbom(make_root(tmp_path / f"root-{run}", reverse), "--out", str(out))
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0].endswith(b"}\n")
    document = json.loads(outputs[0])
    assert outputs[0].decode() == json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_summary_counts_packages_per_kind(tmp_path):
    result = run_sbom(make_root(tmp_path / "root"), "--summary")
    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["kind", "packages", "licensed", "noassertion"],
        ["deb", "8", "4", "4"],
        ["pypi", "3", "2", "1"]]


def test_missing_dpkg_status_is_a_clear_error(tmp_path):
    root = make_root(tmp_path / "root")
    os.remove(root / "var/lib/dpkg/status")
    out = tmp_path / "sbom.spdx.json"
    result = run_sbom(root, "--out", str(out))
    assert result.returncode == 2
    assert result.stderr == f"sbom: error: {root}/var/lib/dpkg/status not found: " \
                            "--root must be a built root file system\n"
    assert not out.exists()


def test_missing_venv_is_a_clear_error(tmp_path):
    root = make_root(tmp_path / "root")
    (root / "opt/vigil/venv/lib/python3.13").rename(root / "opt/vigil/venv/lib/elsewhere")
    result = run_sbom(root, "--summary")
    assert result.returncode == 2
    assert result.stderr.startswith("sbom: error: no ")
    assert "site-packages: is the venv installed?" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_stale_second_dist_info_is_an_error(tmp_path):
    """Two versions of one package would give two entries with one SPDXID: invalid SPDX."""
    root = make_root(tmp_path / "root")
    stale = root / "opt/vigil/venv/lib/python3.13/site-packages/jinja2-3.1.5.dist-info"
    stale.mkdir()
    (stale / "METADATA").write_text("Metadata-Version: 2.1\nName: jinja2\nVersion: 3.1.5\n")
    result = run_sbom(root, "--summary")
    assert result.returncode == 2
    assert result.stderr == "sbom: error: two packages have the same SPDXID: " \
                            "SPDXRef-pypi-jinja2\n"


def test_created_must_be_an_spdx_timestamp(tmp_path):
    result = run_sbom(make_root(tmp_path / "root"), "--summary", "--created", "yesterday")
    assert result.returncode == 2 and "--created" in result.stderr
