"""Imports every table so that ``Base.metadata`` is complete (migrations, tests)."""

import viis.compliance.models  # noqa: F401  (cases, inspections, tips)
from viis.access.models import ApiToken, AuthSession, Organisation, TrainingRecord, User  # noqa: F401
from viis.access.retrieval_models import RegisterEntry, RetrievalRequest, RetrievalSession  # noqa: F401
from viis.access.user_settings import UserSetting  # noqa: F401
from viis.core.db import Base
from viis.health.models import Fault
from viis.health.tickets import FaultTicket  # noqa: F401
from viis.integrity.models import ChainHead
from viis.interconnect.gb28181.cascade_models import GbShare, GbUpperPlatform  # noqa: F401
from viis.interconnect.gb28181.devices import GbChannel, GbDevice  # noqa: F401
from viis.media.models import Gap, Hold, RecorderRun, Segment
from viis.registry.masks import MaskLift, PrivacyMaskSet  # noqa: F401
from viis.registry.models import Camera

__all__ = ["Base", "Camera", "ChainHead", "Fault", "Gap", "Hold", "RecorderRun", "Segment"]
