"""Routes of the slo feature (filled by its phase)."""


def install(app) -> None:
    pass
