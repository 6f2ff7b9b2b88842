"""Fixtures of the simulated camera tests: one small fleet for the session."""

from __future__ import annotations

import pytest

from viis.simcam import SimFleet

# cameras of the shared fleet, one per test so faults do not interfere
CAM_STREAM, CAM_OFFSET, CAM_DROP, CAM_STALL, CAM_FREEZE = 0, 1, 2, 3, 4
CAM_BLACK, CAM_BLUR, CAM_COVER, CAM_SHIFT, CAM_AUTH = 5, 6, 7, 8, 9
USER, PASSWORD = "viewer", "s3cret-pw"


@pytest.fixture(scope="session")
def simcam_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("simcam-cache")


@pytest.fixture(scope="session")
def fleet(simcam_cache):
    f = SimFleet(
        10,
        width=320,
        height=180,
        fps=25,
        gop_s=1.0,
        cycle_s=6.0,
        cache_dir=simcam_cache,
        credentials={CAM_AUTH: (USER, PASSWORD)},
        sub_stream=True,
    )
    f.start()
    try:
        yield f
    finally:
        f.stop()
