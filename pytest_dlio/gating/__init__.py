"""Gating storage changes, pytest-free: baselines (save, compare, fail-on), repeated-run statistics and
stability, MLPerf Storage's rules, and the dataset size MLPerf requires. The plugin adds the items
(``regression``, ``stability``, ``mlperf_rules``) that call these functions."""
