def pytest_configure(config):
    config.addinivalue_line('markers', 'interruption: stops a run at a named point (CI runs these again, under CPU load)')
