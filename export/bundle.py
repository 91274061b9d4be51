import click


@click.command()
def bundle() -> None:
    """(in progress)"""
    raise click.ClickException("not written yet")
