"""Route modules: each defines `install(app)` and calls one core function per route."""
