import pytest

from app.files.storage import display_name


@pytest.mark.parametrize(
    ("client_name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("bad\x00name\n.txt", "badname.txt"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\secret.txt", "secret.txt"),
        ("...", "upload"),
        (None, "upload"),
        ("x" * 300 + ".txt", "x" * 255),
    ],
    ids=["plain", "control-chars", "dot-dot", "windows-path", "dots", "none", "too-long"],
)
def test_display_name_is_harmless(client_name: str | None, expected: str) -> None:
    assert display_name(client_name) == expected
