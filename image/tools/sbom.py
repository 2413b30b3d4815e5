#!/usr/bin/python3
"""SPDX 2.3 software bill of materials of a built root file system.

Lists every installed Debian package and every Python package in the appliance's venv
with its version, purl and licence. Runs on the build machine's python3 with the standard
library only, and writes the same bytes for the same root: the build passes its
SOURCE_DATE_EPOCH time as --created, and packages, keys and indentation are fixed.

    python3 image/tools/sbom.py --root ROOTFS --name NAME --commit SHA \
        --created 2026-11-24T00:00:00Z --out NAME.spdx.json [--summary]
"""

import argparse
import email.parser
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

NOASSERTION = "NOASSERTION"
VENV = "opt/vigil/venv"
# Debian copyright-format short names (case-insensitive) whose SPDX id is certain.
DEBIAN_TO_SPDX = {name.lower(): spdx for name, spdx in {
    "GPL-1": "GPL-1.0-only", "GPL-1+": "GPL-1.0-or-later",
    "GPL-2": "GPL-2.0-only", "GPL-2+": "GPL-2.0-or-later",
    "GPL-3": "GPL-3.0-only", "GPL-3+": "GPL-3.0-or-later",
    "LGPL-2": "LGPL-2.0-only", "LGPL-2+": "LGPL-2.0-or-later",
    "LGPL-2.1": "LGPL-2.1-only", "LGPL-2.1+": "LGPL-2.1-or-later",
    "LGPL-3": "LGPL-3.0-only", "LGPL-3+": "LGPL-3.0-or-later",
    "AGPL-3": "AGPL-3.0-only", "AGPL-3+": "AGPL-3.0-or-later",
    "GPL-2.0+": "GPL-2.0-or-later", "GPL-3.0+": "GPL-3.0-or-later",
    "LGPL-2.0+": "LGPL-2.0-or-later", "LGPL-3.0+": "LGPL-3.0-or-later",
    "Apache-2.0": "Apache-2.0", "Expat": "MIT", "MIT": "MIT", "ISC": "ISC",
    "BSD-2-clause": "BSD-2-Clause", "BSD-3-clause": "BSD-3-Clause",
    "BSD-4-clause": "BSD-4-Clause", "Zlib": "Zlib", "MPL-2.0": "MPL-2.0",
    "CC0-1.0": "CC0-1.0", "BSL-1.0": "BSL-1.0",
    "FSFAP": "FSFAP", "FSFUL": "FSFUL", "FSFULLR": "FSFULLR"}.items()}
# The last part of a "License ::" trove classifier, where it names one licence exactly
# ("BSD License" or "Apache Software License" do not say which version or variant).
CLASSIFIER_TO_SPDX = {
    "MIT License": "MIT", "MIT No Attribution License (MIT-0)": "MIT-0",
    "ISC License (ISCL)": "ISC", "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0", "The Unlicense (Unlicense)": "Unlicense",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0"}
KNOWN_SPDX_IDS = set(DEBIAN_TO_SPDX.values()) | set(CLASSIFIER_TO_SPDX.values())
# Only a sanity check of License-Expression, which PEP 639 already requires to be SPDX.
SPDX_CHARACTERS = re.compile(r"[A-Za-z0-9.+:()\- ]+")


class SbomError(Exception):
    """The root is not one this tool can describe; reported without a traceback."""


def parse_stanzas(text):
    """Fields of each RFC 822 stanza (dpkg status, DEP-5), names lower-cased as both
    formats treat them case-insensitively; continuation lines are kept after a newline."""
    stanzas, fields, name = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields, name = {}, None
        elif line[0] in " \t" and name:
            fields[name] += "\n" + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            fields[name] = value.strip()
    return stanzas


def read_text(path):
    """A file from the root; a few Debian copyright files are not valid UTF-8."""
    return path.read_text(encoding="utf-8", errors="replace")


def installed_debs(root):
    """Stanzas of the packages dpkg has unpacked and configured. The last Status word
    decides: "hold ok installed" is installed too, "deinstall ok config-files" is not."""
    status = root / "var/lib/dpkg/status"
    if not status.is_file():
        raise SbomError(f"{status} not found: --root must be a built root file system")
    debs = [s for s in parse_stanzas(read_text(status))
            if s.get("status", "").split()[-1:] == ["installed"]]
    if not debs:
        raise SbomError(f"{status} lists no installed packages")
    return debs


def distro_codename(root):
    """VERSION_CODENAME from the root's os-release. /etc/os-release is usually a symlink,
    which must not be followed out of the root, so only regular files are read."""
    for candidate in ("usr/lib/os-release", "etc/os-release"):
        path = root / candidate
        if path.is_file() and not path.is_symlink():
            for line in read_text(path).splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "VERSION_CODENAME":
                    return value.strip().strip("\"'")
    return None


def purl(kind, namespace, name, version, qualifiers):
    """A package URL with each part percent-encoded per the purl spec (':' in a Debian
    epoch becomes %3A, '+' becomes %2B); qualifiers are sorted by key."""
    path = "/".join(percent_encode(p) for p in (namespace, name) if p)
    query = "&".join(f"{k}={percent_encode(v)}" for k, v in sorted(qualifiers.items()) if v)
    return f"pkg:{kind}/{path}@{percent_encode(version)}" + (f"?{query}" if query else "")


def percent_encode(part):
    """Everything but letters, digits and '.-_~' percent-encoded, as purl asks."""
    return quote(part, safe=".-_~")


def spdx_id(*parts):
    """An SPDXID: only letters, digits, '.' and '-' are allowed."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", "SPDXRef-" + "-".join(parts))


def source_of(deb):
    """(name, version) of the source package a binary was built from: the Source field is
    "src (version)" when the versions differ, "src" or absent when they do not."""
    source = deb.get("source", deb["package"]).split()
    return source[0], source[1].strip("()") if len(source) > 1 else deb["version"]


def copyright_file(root, package, sources):
    """(path, note) of PACKAGE's copyright file, or (None, why not). A doc dir that is a
    symlink is followed, link by link, only to a sibling dir of a package of the same
    source, which is what Debian policy (12.5) allows; anything else could leave the root
    or read another package's licence."""
    doc, note, seen = root / "usr/share/doc" / package, "", {package}
    while doc.is_symlink():
        target = os.readlink(doc)
        if "/" in target or target in seen or sources.get(target) != sources[package]:
            return None, f"/usr/share/doc/{doc.name} is a symlink to {target}, " \
                         "not to another package of the same source"
        doc, note = doc.parent / target, f"read from /usr/share/doc/{target}/copyright; "
        seen.add(target)
    path = doc / "copyright"
    if path.is_symlink():
        return None, f"/usr/share/doc/{doc.name}/copyright is a symlink"
    if not path.is_file():
        return None, f"no /usr/share/doc/{doc.name}/copyright in the image"
    return path, note


def dep5_licence_names(text):
    """Distinct License short names of the Files stanzas, or None if the file is not in
    the machine-readable copyright format (DEP-5)."""
    stanzas = parse_stanzas(text)
    header = stanzas[0] if stanzas else {}
    spec = header.get("format", header.get("format-specification", ""))
    if "copyright-format" not in spec and "dep5" not in spec:
        return None
    return sorted({s["license"].split("\n")[0].strip()
                   for s in stanzas if "files" in s and s.get("license", "").strip()})


def spdx_from_debian_expression(expression):
    """SPDX expression of one Debian licence field, or None where unsure: "with"
    exceptions and commas (which change precedence in DEP-5) are not mapped, nor are
    "and" and "or" mixed."""
    parts = re.split(r"\s+(and|or)\s+", expression.strip(), flags=re.IGNORECASE)
    terms, operators = parts[::2], {op.lower() for op in parts[1::2]}
    mapped = [DEBIAN_TO_SPDX.get(term.lower()) for term in terms]
    if "," in expression or len(operators) > 1 or None in mapped:
        return None
    return f" {operators.pop().upper()} ".join(mapped) if operators else mapped[0]


def spdx_from_debian(names):
    """All of a package's licences joined with AND, or NOASSERTION unless every one maps."""
    mapped = [spdx_from_debian_expression(name) for name in names]
    if not mapped or None in mapped:
        return NOASSERTION
    mapped = sorted(set(mapped))
    return " AND ".join(f"({m})" if " OR " in m and len(mapped) > 1 else m for m in mapped)


def deb_licence(root, package, sources):
    """(licenseDeclared, licenseComments) of a Debian package from its copyright file."""
    path, note = copyright_file(root, package, sources)
    if path is None:
        return NOASSERTION, note
    names = dep5_licence_names(read_text(path))
    if names is None:
        return NOASSERTION, note + "copyright file is not machine-readable (DEP-5)"
    if not names:
        return NOASSERTION, note + "copyright file names no licence for its Files"
    return spdx_from_debian(names), note + "Debian licences: " + "; ".join(names)


def package_entry(ident, name, version, url, licence, comment):
    """The fields every package shares; files are not analysed, so none are listed."""
    return {"SPDXID": ident, "name": name, "versionInfo": version,
            "supplier": NOASSERTION, "downloadLocation": NOASSERTION,
            "filesAnalyzed": False, "licenseConcluded": NOASSERTION,
            "licenseDeclared": licence, "licenseComments": comment,
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER",
                              "referenceType": "purl", "referenceLocator": url}]}


def deb_packages(root):
    """An SPDX package for each installed Debian package."""
    debs, distro = installed_debs(root), distro_codename(root)
    sources = {deb["package"]: source_of(deb)[0] for deb in debs}
    packages = []
    for deb in debs:
        name, version, arch = deb["package"], deb["version"], deb["architecture"]
        entry = package_entry(spdx_id("deb", name, arch), name, version,
                              purl("deb", "debian", name, version,
                                   {"arch": arch, "distro": distro}),
                              *deb_licence(root, name, sources))
        entry["supplier"] = "Organization: Debian"
        entry["sourceInfo"] = "built from Debian source package {} {}".format(*source_of(deb))
        packages.append(entry)
    return packages


def python_licence(meta):
    """(licenseDeclared, licenseComments) from a METADATA: License-Expression (PEP 639),
    else a License field that is exactly an SPDX id, else a single mapped classifier."""
    expression = " ".join(meta.get("License-Expression", "").split())
    if expression:
        plausible = SPDX_CHARACTERS.fullmatch(expression)
        return (expression if plausible else NOASSERTION), f"License-Expression: {expression}"
    licence = (meta.get("License") or "").strip()
    classifiers = sorted(c.split("::")[-1].strip() for c in meta.get_all("Classifier", [])
                         if c.startswith("License ::"))
    said = [f"License: {licence.splitlines()[0][:200]}"] if licence else []
    said += [f"Classifier: {c}" for c in classifiers]
    comment = "; ".join(said) or "no licence metadata"
    if licence in KNOWN_SPDX_IDS:
        return licence, comment
    mapped = {CLASSIFIER_TO_SPDX.get(c) for c in classifiers}
    if len(mapped) == 1 and None not in mapped:
        return mapped.pop(), comment
    return NOASSERTION, comment


def python_packages(root):
    """An SPDX package for each *.dist-info in the venv's site-packages."""
    sites = sorted((root / VENV / "lib").glob("python3.*/site-packages"))
    if not sites:
        raise SbomError(f"no {root / VENV}/lib/python3.*/site-packages: is the venv installed?")
    packages = []
    for metadata in sorted(p for site in sites for p in site.glob("*.dist-info/METADATA")):
        meta = email.parser.HeaderParser().parsestr(read_text(metadata))
        if not meta.get("Name") or not meta.get("Version"):
            raise SbomError(f"{metadata} has no Name or Version")
        name, version = meta["Name"].strip(), meta["Version"].strip()
        normalised = re.sub(r"[-_.]+", "-", name).lower()
        packages.append(package_entry(spdx_id("pypi", normalised), name, version,
                                      purl("pypi", "", normalised, version, {}),
                                      *python_licence(meta)))
    if not packages:
        raise SbomError(f"no Python packages in {root / VENV}")
    return packages


def sbom_document(root, name, commit, created):
    """The whole SPDX document, packages sorted by SPDXID so the order never depends on
    the status file or the directory listing."""
    packages = sorted(deb_packages(root) + python_packages(root), key=lambda p: p["SPDXID"])
    idents = [p["SPDXID"] for p in packages]
    if len(set(idents)) != len(idents):
        raise SbomError("two packages have the same SPDXID: " +
                        ", ".join(sorted({i for i in idents if idents.count(i) > 1})))
    return {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT", "name": name,
            "documentNamespace": "https://vigil-nvr.invalid/spdx/"
                                 f"{quote(name, safe='')}-{quote(commit, safe='')}",
            "creationInfo": {"created": created, "creators": ["Tool: vigil-image-sbom"]},
            "packages": packages,
            "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT",
                               "relationshipType": "DESCRIBES",
                               "relatedSpdxElement": ident} for ident in idents]}


def summary(document):
    """A table for the build log: packages per kind and how many have a known licence."""
    rows = ["kind  packages  licensed  noassertion"]
    for kind in ("deb", "pypi"):
        packages = [p for p in document["packages"]
                    if p["SPDXID"].startswith(f"SPDXRef-{kind}-")]
        unknown = sum(p["licenseDeclared"] == NOASSERTION for p in packages)
        rows.append(f"{kind:<4}  {len(packages):>8}  {len(packages) - unknown:>8}  "
                    f"{unknown:>11}")
    return "\n".join(rows) + "\n"


def spdx_time(value):
    """--created must already be in SPDX's form, so the output never depends on a clock."""
    datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    return value


def main(argv=None):
    """Exit status 0, or 2 for a root that cannot be described (as for bad arguments)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the built root file system")
    parser.add_argument("--name", required=True, help="document name, e.g. vigil-0.1.0-arm64")
    parser.add_argument("--commit", required=True, help="the source commit of the image")
    parser.add_argument("--created", type=spdx_time, required=True,
                        help="creation time as YYYY-MM-DDThh:mm:ssZ (from SOURCE_DATE_EPOCH)")
    parser.add_argument("--out", type=Path, help="where to write the SPDX JSON")
    parser.add_argument("--summary", action="store_true", help="print package counts")
    args = parser.parse_args(argv)
    if not args.out and not args.summary:
        parser.error("nothing to do: give --out, --summary or both")
    try:
        document = sbom_document(args.root, args.name, args.commit, args.created)
    except SbomError as error:
        print(f"sbom: error: {error}", file=sys.stderr)
        return 2
    if args.out:
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
        args.out.write_bytes(text.encode("ascii"))
    if args.summary:
        sys.stdout.write(summary(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
