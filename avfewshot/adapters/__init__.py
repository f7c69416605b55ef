"""Trainable adapters inserted into the frozen encoders (DG-SCT units and their official-name mapping)."""
from .dgsct_unit import AttentionMaps, DGSCTUnit, DGSCTUnitConfig, GroupedPointwise, count_parameters
from .official_names import load_official_state_dict, to_official_state_dict

__all__ = [
    "AttentionMaps",
    "DGSCTUnit",
    "DGSCTUnitConfig",
    "GroupedPointwise",
    "count_parameters",
    "load_official_state_dict",
    "to_official_state_dict",
]
