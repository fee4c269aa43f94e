"""The sandbox's pure parts: which networks are refused, the iptables rules, the checkout check."""

import os

import pytest

from binderlite.errors import ConfigError, UnsafeRepositoryError
from binderlite.links.git import git_failure_reason
from binderlite.sandbox import netrules
from binderlite.sandbox.checkout import check_tree
from binderlite.settings import parse_size


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.17.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 form of 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 form of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 form of 169.254.169.254
        "2002:c0a8:0101::",  # 6to4 form of 192.168.1.1
    ],
)
def test_internal_addresses_are_blocked(address):
    assert netrules.is_blocked(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "64:ff9b::5db8:d822", "2002:5db8:d822::1"])
def test_public_addresses_and_their_nat64_forms_are_not(address):
    assert not netrules.is_blocked(address)


def test_extra_blocked_networks_setting():
    assert netrules.is_blocked("93.184.216.34", extra="93.184.216.0/24")
    assert netrules.is_blocked("64:ff9b::5db8:d822", extra="93.184.216.0/24"), "their NAT64 form too"


def test_rules_let_dns_and_the_proxy_through_before_refusing():
    rules = netrules.rule_set(4, ["10.255.255.53"], [("10.0.0.8", 3128)])
    first_reject = next(i for i, r in enumerate(rules.strict) if "REJECT" in r)
    allowed = rules.strict[:first_reject]
    assert "-d 10.255.255.53 -p udp --dport 53 -j RETURN" in allowed
    assert "-d 10.0.0.8 -p tcp --dport 3128 -j RETURN" in allowed
    assert "-d 169.254.0.0/16 -p tcp -j REJECT --reject-with tcp-reset" in rules.strict
    assert all("169.254.0.0/16" in r for r in rules.local), "the local user is kept from metadata only"
    text = rules.restore_input()
    assert text.startswith("*filter\n:BINDERLITE-SANDBOX - [0:0]") and text.endswith("COMMIT\n")


def test_ipv6_rules_cover_embedded_ipv4_forms():
    rules = netrules.rule_set(6, ["10.255.255.53"], [])
    assert not any("10.255.255.53" in r for r in rules.strict), "an IPv4 resolver is not an IPv6 rule"
    assert any("64:ff9b::a9fe:0/112" in r for r in rules.strict)
    assert any("::1/128" in r for r in rules.strict)


def test_resolvers_are_read_from_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nsearch example.org\n")
    assert netrules.resolvers(conf) == ["127.0.0.53", "fe80::1"]


def _tree(tmp_path):
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "requirements.txt").write_text("six\n")
    (root / "sub" / "data.csv").write_text("a,b\n")
    return root


def test_a_self_contained_tree_passes(tmp_path):
    root = _tree(tmp_path)
    os.symlink("sub/data.csv", root / "link-inside")
    os.symlink("../requirements.txt", root / "sub" / "up-but-inside")
    assert check_tree(root, 1024, 10_000) == len("six\n") + len("a,b\n")


@pytest.mark.parametrize("target", ["/etc/passwd", "/dev/zero", "../outside", "sub/../../outside", "/"])
def test_links_leaving_the_tree_are_refused(tmp_path, target):
    root = _tree(tmp_path)
    (tmp_path / "outside").write_text("secret")
    os.symlink(target, root / "environment.yml")
    with pytest.raises(UnsafeRepositoryError, match="outside the repository"):
        check_tree(root, 1024, 10_000)


def test_a_link_through_a_linked_folder_is_judged_by_where_it_lands(tmp_path):
    root = _tree(tmp_path)
    os.symlink("sub", root / "alias")
    os.symlink("alias/../../outside", root / "sneaky")
    (tmp_path / "outside").write_text("secret")
    with pytest.raises(UnsafeRepositoryError, match="sneaky"):
        check_tree(root, 1024, 10_000)


def test_fifos_and_sizes_are_refused(tmp_path):
    root = _tree(tmp_path)
    os.mkfifo(root / "pipe")
    with pytest.raises(UnsafeRepositoryError, match="FIFO"):
        check_tree(root, 1024, 10_000)
    (root / "pipe").unlink()
    with pytest.raises(UnsafeRepositoryError, match="max_file_size"):
        check_tree(root, 3, 10_000)
    with pytest.raises(UnsafeRepositoryError, match="max_repo_size"):
        check_tree(root, 1024, 5)


@pytest.mark.parametrize(
    "output, reason",
    [
        ("fatal: unable to access 'http://x/': Could not resolve host: x", "does not resolve"),
        ("fatal: unable to access 'http://10.0.0.1:22/': Failed to connect to 10.0.0.1", "could not be reached"),
        ("remote: Repository not found.\nfatal: repository 'https://github.com/a/b/' not found", "not public"),
        ("fatal: '/x' does not appear to be a git repository", "not public"),
        ("fatal: remote error: upload-pack: not our ref 0123", "does not have the commit"),
        ("something else entirely", "git could not read it"),
    ],
)
def test_git_failures_become_generic_reasons(output, reason):
    assert reason in git_failure_reason(output)
    assert "10.0.0.1" not in git_failure_reason(output)


@pytest.mark.parametrize("text, expected", [("512M", 512 * 1024**2), ("2G", 2 * 1024**3), ("1.5GiB", 3 * 1024**3 // 2),
                                            ("1048576", 1048576), ("10k", 10240)])  # fmt: skip
def test_sizes_parse(text, expected):
    assert parse_size(text, "x") == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0"])
def test_bad_sizes_name_the_setting(text):
    with pytest.raises(ConfigError, match="max_repo_size"):
        parse_size(text, "max_repo_size")
