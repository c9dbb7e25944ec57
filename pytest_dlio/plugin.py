"""pytest hooks only (wiring); the work lives in items, config, phases and report."""
