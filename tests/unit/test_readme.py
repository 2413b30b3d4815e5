"""README.md stays true to the code: every setting is documented exactly as the model says."""

from pathlib import Path

import pytest

from appliance.config.reference import SECTIONS, markdown_rows

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_setting_is_in_the_readme_table(section):
    text = README.read_text()
    missing = [row for row in markdown_rows(SECTIONS[section]) if row not in text]
    assert not missing, f"README [{section}] settings table is out of date; regenerate with\n" \
        "  .venv/bin/python -c 'from appliance.config.reference import SECTIONS, markdown_rows " \
        f"as m; print(chr(10).join(m(SECTIONS[\"{section}\"])))'\n" + "\n".join(missing)


def test_readme_shows_the_two_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text
