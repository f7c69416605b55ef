"""Fully supervised DG-SCT runners: one adapted Swin-V2 + HTS-AT encoder, AVE with CMBS, AVVP with MGN."""
