"""Worker scripts run as processes of their own, never imported by pytest
(its doctest collection would run their module code)."""

collect_ignore_glob = ["*.py"]
