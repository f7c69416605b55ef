"""Heads and losses of the supervised AVS (TPAVI decoder) and AVQA (ST-AVQA) runners, standalone so
they can be built and tested without the adapted encoder; shapes they consume: :mod:`.shapes`."""
from .avs_decoder import AVSDecoder, AVSDecoderConfig
from .avs_losses import masked_av_term, ms3_loss, s4_loss
from .avs_temporal import AVSTemporalGate
from .negatives import sample_negatives
from .shapes import HTSAT_POOLED_DIM, SWIN_V2_L_192_STAGES, SWIN_V2_L_FINAL_DIM
from .st_avqa import STAVQAConfig, STAVQAHead, avqa_loss, grounding_parameters, load_grounding
from .tpavi import TPAVI

__all__ = [
    "AVSDecoder", "AVSDecoderConfig", "AVSTemporalGate", "TPAVI", "s4_loss", "ms3_loss", "masked_av_term",
    "STAVQAConfig", "STAVQAHead", "avqa_loss", "grounding_parameters", "load_grounding", "sample_negatives",
    "SWIN_V2_L_192_STAGES", "SWIN_V2_L_FINAL_DIM", "HTSAT_POOLED_DIM",
]
