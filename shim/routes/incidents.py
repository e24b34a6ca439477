"""Routes of the incidents feature (filled by its phase)."""


def install(app) -> None:
    pass
