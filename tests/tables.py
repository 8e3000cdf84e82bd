"""Markdown tables read back from a benchmark's output, for shape checks."""


def markdown_tables(stdout: str) -> list[list[list[str]]]:
    """Markdown tables in the output, as rows of cells (header first, separator dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*stdout.splitlines(), ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables
