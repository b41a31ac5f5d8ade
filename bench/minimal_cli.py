"""The `--help` baseline: a minimal Typer app with two commands (``python -m bench.minimal_cli --help``)."""

from __future__ import annotations

import typer

app = typer.Typer(help="A minimal Typer app.", no_args_is_help=True)


@app.command()
def serve(port: int = 8000) -> None:
    """Serve something."""
    typer.echo(f"serving on {port}")


@app.command()
def migrate() -> None:
    """Migrate something."""
    typer.echo("migrated")


if __name__ == "__main__":
    app(prog_name="minimal")
