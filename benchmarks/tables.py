"""The Markdown tables the benchmarks print."""


def markdown(header, rows: list[dict]) -> str:
  """Rows (dicts keyed by header) as a Markdown table: floats to 3 significant digits."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in rows:
    lines.append("| " + " | ".join(f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]) for k in header) + " |")
  return "\n".join(lines)
