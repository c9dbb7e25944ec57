"""Storage conformance suite: ``pytest --pyargs pytest_dlio.suites.storage --dlio-storage URI``."""
