"""Routes of the costs feature (filled by its phase)."""


def install(app) -> None:
    pass
