"""Routes of the scale feature (filled by its phase)."""


def install(app) -> None:
    pass
