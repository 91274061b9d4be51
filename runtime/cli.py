import click


@click.command()
def predict() -> None:
    """(in progress)"""
    raise click.ClickException("not written yet")


@click.command()
def live() -> None:
    """(in progress)"""
    raise click.ClickException("not written yet")


@click.command()
def bench() -> None:
    """(in progress)"""
    raise click.ClickException("not written yet")
