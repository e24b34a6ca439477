"""All echoops logic. Nothing here imports typer, rich or bottle."""
