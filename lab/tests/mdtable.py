"""Reading the report's markdown tables in tests."""


def md_row(md: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is `label`."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{md}")
