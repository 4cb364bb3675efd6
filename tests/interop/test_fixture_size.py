"""The committed peer fixtures stay small: issue 15 allows 2 MB for all of them."""

import os

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
LIMIT = 2_000_000  # bytes


def test_fixtures_fit_in_two_megabytes():
    # files in SavedModel directories count too
    sizes = {
        os.path.relpath(os.path.join(root, name), FIXTURES): os.path.getsize(
            os.path.join(root, name)
        )
        for root, _, names in os.walk(FIXTURES)
        for name in names
    }
    assert any(name.endswith(".h5") for name in sizes)  # the folder is the right one
    assert any(os.sep in name for name in sizes)  # and its SavedModel directories are walked
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
    assert sum(sizes.values()) < LIMIT, f"{sum(sizes.values())} bytes; largest: {largest}"
