"""Reports: DLIO-compatible JSON files, the terminal table, JUnit properties."""
