import click


@click.command()
def export() -> None:
    """(in progress)"""
    raise click.ClickException("not written yet")


@click.command(name="all")
def run_all() -> None:
    """(in progress)"""
    raise click.ClickException("not written yet")
