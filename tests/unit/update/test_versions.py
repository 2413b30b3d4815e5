"""Release order is what anti-rollback compares: a wrong order or a lax parse would let an
older (or garbled) bundle install."""

import pytest

from appliance.core.errors import InvalidConfig
from appliance.update.versions import MAX_BUILD, Release


def test_versions_order_by_their_numbers_not_as_text():
    ordered = [Release.parse(v) for v in ("0.1.0", "0.1.1", "0.2.0", "0.10.0", "1.0.0")]
    assert ordered == sorted(reversed(ordered))
    assert all(older < newer for older, newer in zip(ordered, ordered[1:]))


def test_a_rebuild_of_the_same_version_is_newer_than_the_first_build():
    first, rebuild = Release.parse("0.1.0", 1_700_000_000), Release.parse("0.1.0", "1800000000")
    assert first < rebuild
    assert rebuild < Release.parse("0.1.1", 0)   # the version decides before the build


def test_parse_keeps_the_numbers_and_the_build():
    release = Release.parse("12.0.345", " 1800000000 ")
    assert release.numbers == (12, 0, 345)
    assert release.build == 1_800_000_000
    assert release.version == "12.0.345"
    assert release.to_json() == {"version": "12.0.345", "build": 1_800_000_000}
    assert str(release) == "12.0.345 (build 1800000000)"


@pytest.mark.parametrize("build", [None, "", 0])
def test_a_missing_build_is_build_zero(build):
    assert Release.parse("1.2.3", build).build == 0


@pytest.mark.parametrize("version", ["1.2", "1.2.3.4", " 1.2.3", "1.2.3 ", "1.2.3\n", "1.2.x",
                                     "v1.2.3", "1..3", "\u0661.\u0662.\u0663", 1.2, None, ""])
def test_a_version_that_is_not_three_numbers_is_refused_naming_the_field(version):
    with pytest.raises(InvalidConfig, match=r"^version .* is not three numbers"):
        Release.parse(version, 1)


@pytest.mark.parametrize("build", ["abc", "-1", "1.5", "1e9", "\u00b2", True, 2 ** 41, MAX_BUILD + 1])
def test_a_build_that_is_not_a_commit_time_is_refused_naming_the_field(build):
    with pytest.raises(InvalidConfig, match=r"^build .* is not a build number"):
        Release.parse("1.2.3", build)


def test_the_largest_build_is_accepted():
    assert Release.parse("1.2.3", MAX_BUILD).build == MAX_BUILD
