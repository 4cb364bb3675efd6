"""The fixture scripts run in the peers' environments (tf_keras, larq): pytest skips them."""

collect_ignore_glob = ["make_fixtures_*.py"]
