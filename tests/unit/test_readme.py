"""README.md stays true to the code: every setting is documented exactly as the model says."""

from pathlib import Path

from appliance.config.reference import markdown_rows

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_recorder_setting_is_in_the_readme_table():
    text = README.read_text()
    missing = [row for row in markdown_rows() if row not in text]
    assert not missing, "README settings table is out of date; regenerate with\n" \
        "  .venv/bin/python -c 'from appliance.config.reference import markdown_rows as m; " \
        "print(chr(10).join(m()))'\n" + "\n".join(missing)


def test_readme_shows_the_two_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text
