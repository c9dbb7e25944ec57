"""Ready-made test suites users run as they are: ``pytest --pyargs pytest_dlio.suites.storage``."""
