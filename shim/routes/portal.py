"""Routes of the portal feature (filled by its phase)."""


def install(app) -> None:
    pass
