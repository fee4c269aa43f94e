"""The workshop bundle's checks: a damaged, incomplete, tampered or hostile bundle is refused, naming the part."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from binderlite.cli import main
from binderlite.workshop import bundle
from binderlite.workshop.bundle import BundleError, verify
from binderlite.workshop.debs import apt_options, sources_text, wanted_packages
from binderlite.workshop.importer import _unpack
from binderlite.workshop.manifest import Manifest

MANIFEST = Manifest(attendees=3).to_json().encode()


def inner_tar(entries: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode=mode) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return data.getvalue()


def link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def good_parts() -> dict[str, bytes]:
    return {
        bundle.INFO: b'{"format": 1, "images": []}\n',
        bundle.MANIFEST: MANIFEST,
        bundle.MIRROR: inner_tar([("simple/six/six-1.16.0-py2.py3-none-any.whl", b"wheel")]),
        bundle.REPOS: inner_tar([("gh-org-repo.git/HEAD", b"ref: refs/heads/main\n")]),
        bundle.PROXY: inner_tar(
            [("lib/node_modules/chp/bin/chp.js", b"js"), link("bin/chp", "../lib/node_modules/chp/bin/chp.js")],
            "w:gz",
        ),
        bundle.IMAGES: b"pretend docker save output" * 100,
    }


def write_bundle(
    path: Path,
    parts: dict[str, bytes],
    sums: str | None = None,
    extra: list[tarfile.TarInfo | tuple[str, bytes]] = (),
) -> Path:
    if sums is None:
        sums = bundle.checksum_text({name: hashlib.sha256(data).hexdigest() for name, data in parts.items()})
    members = [(f"{bundle.FOLDER}/{bundle.CHECKSUMS}", sums.encode())]
    members += [(f"{bundle.FOLDER}/{name}", data) for name, data in parts.items()]
    path.write_bytes(inner_tar([*members, *extra]))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(BundleError) as caught:
        verify(path, echo=lambda _: None)
    assert caught.value.exit_code == 2
    return caught.value.message


def test_a_sound_bundle_verifies_with_every_part_sized(tmp_path):
    parts = good_parts()
    said = []
    found = verify(write_bundle(tmp_path / "w.tar", parts), echo=said.append)
    assert found.sizes == {name: len(data) for name, data in parts.items()}
    assert found.texts[bundle.MANIFEST] == MANIFEST.decode()
    assert "every checksum matches" in said[0]


def test_one_flipped_byte_in_a_part_is_refused_naming_that_part(tmp_path):
    parts = good_parts()
    sums = bundle.checksum_text({name: hashlib.sha256(data).hexdigest() for name, data in parts.items()})
    damaged = bytearray(parts[bundle.IMAGES])
    damaged[len(damaged) // 2] ^= 0x01
    parts[bundle.IMAGES] = bytes(damaged)
    message = refusal(write_bundle(tmp_path / "w.tar", parts, sums))
    assert "images.tar does not match its checksum" in message


def test_a_part_listed_but_missing_is_named(tmp_path):
    parts = good_parts()
    sums = bundle.checksum_text({name: hashlib.sha256(data).hexdigest() for name, data in parts.items()})
    del parts[bundle.REPOS]
    assert "repos.tar is missing" in refusal(write_bundle(tmp_path / "w.tar", parts, sums))


def test_a_required_part_absent_everywhere_is_named(tmp_path):
    parts = good_parts()
    del parts[bundle.IMAGES]
    assert "has no images.tar" in refusal(write_bundle(tmp_path / "w.tar", parts))


def test_a_part_not_in_the_checksum_file_is_refused(tmp_path):
    parts = good_parts()
    sums = bundle.checksum_text(
        {name: hashlib.sha256(data).hexdigest() for name, data in parts.items() if name != bundle.MIRROR}
    )
    assert "mirror.tar is not in SHA256SUMS" in refusal(write_bundle(tmp_path / "w.tar", parts, sums))


@pytest.mark.parametrize(
    "tamper, expected",
    [
        (lambda text: text.replace("  manifest.json", "  manifest.json ; rm -rf /"), "SHA256SUMS is damaged"),
        (lambda text: text + text.splitlines()[0] + "\n", "lists bundle.json twice"),
        (lambda text: "0" * 64 + "  ../../etc/passwd\n" + text, "SHA256SUMS is damaged"),
        (lambda text: "", "bundle.json is not in SHA256SUMS"),
    ],
)
def test_a_tampered_checksum_file_is_refused(tmp_path, tamper, expected):
    parts = good_parts()
    sums = bundle.checksum_text({name: hashlib.sha256(data).hexdigest() for name, data in parts.items()})
    assert expected in refusal(write_bundle(tmp_path / "w.tar", parts, tamper(sums)))


def test_a_changed_checksum_names_its_part(tmp_path):
    parts = good_parts()
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in parts.items()}
    sums[bundle.MANIFEST] = hashlib.sha256(b"another manifest").hexdigest()
    message = refusal(write_bundle(tmp_path / "w.tar", parts, bundle.checksum_text(sums)))
    assert "manifest.json does not match its checksum" in message


def test_no_checksum_file_is_refused(tmp_path):
    members = [(f"{bundle.FOLDER}/{name}", data) for name, data in good_parts().items()]
    (tmp_path / "w.tar").write_bytes(inner_tar(members))
    assert "has no SHA256SUMS" in refusal(tmp_path / "w.tar")


@pytest.mark.parametrize(
    "member, expected",
    [
        (("binderlite-workshop/../../etc/cron.d/x", b"x"), "no part of a workshop bundle"),
        (("/etc/passwd", b"x"), "no part of a workshop bundle"),
        (("binderlite-workshop/extra.sh", b"x"), "no part of a workshop bundle"),
        (link("binderlite-workshop/debs.tar", "/etc/shadow"), "debs.tar is not a plain file"),
    ],
)
def test_outer_members_outside_the_parts_are_refused(tmp_path, member, expected):
    assert expected in refusal(write_bundle(tmp_path / "w.tar", good_parts(), extra=[member]))


def test_a_part_twice_is_refused(tmp_path):
    parts = good_parts()
    extra = [(f"{bundle.FOLDER}/{bundle.MANIFEST}", parts[bundle.MANIFEST])]
    assert "manifest.json twice" in refusal(write_bundle(tmp_path / "w.tar", parts, extra=extra))


@pytest.mark.parametrize(
    "entries, expected",
    [
        ([("../escape.txt", b"x")], "'../escape.txt', outside its folder"),
        ([("simple/../../escape.txt", b"x")], "outside its folder"),
        ([("/root/.ssh/authorized_keys", b"x")], "outside its folder"),
        ([link("simple/six", "/etc")], "a link or device"),
        ([link("simple/six", "../../../etc")], "a link or device"),
    ],
)
def test_a_hostile_mirror_inside_a_checksummed_bundle_is_refused(tmp_path, entries, expected):
    parts = good_parts()
    parts[bundle.MIRROR] = inner_tar(entries)
    message = refusal(write_bundle(tmp_path / "w.tar", parts))
    assert "mirror.tar" in message and expected in message


def test_the_proxy_may_link_inside_itself_but_not_out(tmp_path):
    parts = good_parts()
    parts[bundle.PROXY] = inner_tar([link("bin/chp", "../../usr/bin/python3")], "w:gz")
    assert "proxy.tar.gz holds 'bin/chp', a link" in refusal(write_bundle(tmp_path / "w.tar", parts))


def test_a_part_that_is_no_tar_is_refused(tmp_path):
    parts = good_parts()
    parts[bundle.REPOS] = b"not a tar at all" * 64
    assert "repos.tar is not a readable tar" in refusal(write_bundle(tmp_path / "w.tar", parts))


def test_a_file_that_is_no_bundle_is_refused(tmp_path):
    (tmp_path / "w.tar").write_bytes(b"\x00garbage" * 1000)
    assert "is not a workshop bundle (not a tar archive" in refusal(tmp_path / "w.tar")


def test_import_on_the_command_line_refuses_a_damaged_bundle_with_exit_2(tmp_path):
    parts = good_parts()
    sums = bundle.checksum_text({name: hashlib.sha256(data).hexdigest() for name, data in parts.items()})
    parts[bundle.MIRROR] = parts[bundle.MIRROR].replace(b"wheel", b"whee!")
    path = write_bundle(tmp_path / "w.tar", parts, sums)
    result = CliRunner().invoke(main, ["workshop", "import", str(path)], env={"BINDERLITE_STATE_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "Error: The bundle's mirror.tar does not match its checksum" in result.output
    assert not (tmp_path / "workshop" / "manifest.json").exists()


def test_import_of_a_missing_file_says_so(tmp_path):
    result = CliRunner().invoke(
        main, ["workshop", "import", str(tmp_path / "nope.tar")], env={"BINDERLITE_STATE_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "is not a file" in result.output


def test_unpack_writes_plain_files_inside_its_folder(tmp_path):
    data = inner_tar([("simple/six/six.whl", b"wheel"), ("simple/index.html", b"<a>six</a>")])
    digest = _unpack(bundle.MIRROR, io.BytesIO(data), tmp_path / "mirror")
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "mirror" / "simple" / "six" / "six.whl").read_bytes() == b"wheel"
    assert (tmp_path / "mirror" / "simple" / "index.html").stat().st_mode & 0o777 == 0o644


def test_unpack_refuses_a_name_twice(tmp_path):
    data = inner_tar([("a/b", b"1"), ("a/b", b"2")])
    with pytest.raises(BundleError, match="twice"):
        _unpack(bundle.REPOS, io.BytesIO(data), tmp_path / "repos")


def test_debian_closure_leaves_out_npm_and_takes_buildx_from_trixie_in_a_private_apt_state(tmp_path):
    listing = tmp_path / "packages.txt"
    listing.write_text("# comment\ndocker.io\nnodejs  # the proxy's runtime\nnpm\n\n")
    assert wanted_packages(listing) == ["docker.io", "nodejs"]
    assert "Suites: trixie" in sources_text() and "bookworm-security" in sources_text()
    options = " ".join(apt_options(tmp_path / "apt", tmp_path / "debs"))
    assert f"Dir::State::status={tmp_path / 'apt' / 'status'}" in options
    assert "/var/lib/dpkg" not in options and "/var/lib/apt" not in options


def test_the_debian_folder_gets_a_flat_repository_index_apt_can_read(tmp_path):
    from binderlite.workshop.debs import write_index

    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: bltest-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@localhost>\nDescription: test\n"
    )
    deb = tmp_path / "debs" / "bltest-hello_1.0_all.deb"
    deb.parent.mkdir()
    subprocess.run(["dpkg-deb", "--build", "-Zxz", str(root), str(deb)], check=True, capture_output=True)
    write_index(deb.parent, [deb], ["bltest-hello"])
    packages = (deb.parent / "Packages").read_text()
    assert "Package: bltest-hello\nVersion: 1.0\n" in packages
    assert f"Filename: ./{deb.name}\nSize: {deb.stat().st_size}\nSHA256: " in packages
    digest = hashlib.sha256(packages.encode()).hexdigest()
    assert f" {digest} {len(packages)} Packages" in (deb.parent / "Release").read_text()
    assert (deb.parent / "wanted.txt").read_text() == "bltest-hello\n"


def test_export_refuses_a_link_in_a_folder_it_carries(tmp_path):
    from binderlite.errors import BadInputError
    from binderlite.workshop.export import tar_folder

    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "six.whl").write_bytes(b"wheel")
    (tmp_path / "mirror" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(BadInputError, match="passwd is a link"):
        tar_folder(tmp_path / "mirror", tmp_path / "mirror.tar")
