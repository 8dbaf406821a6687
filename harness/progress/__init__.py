"""Progress a person can see: a boot as it goes (``boot``), the same lines through ``logging`` for
pytest (``logs``), and a matrix run's cells as they start and end (``matrix``).

Plain classes fed by events (a ``ConsoleTap``'s ``BootEvent``s, a matrix run's cell events); the CLI
and the pytest plugin only attach them.
"""
