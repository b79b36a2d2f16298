"""Shared CLIP code of MA-FSAR and its baselines (AIM, CLIP-FSAR, zero-shot CLIP).

One concept per module: `backbone` (loading open_clip, freezing, ViT token helpers), `text`
(prompt templates, the frozen class-text encoder, video-text similarity), `adapter` (the
bottleneck adapter), `attention` (CLIP-FSAR's transformer layer), `matching` (a prototype module
before any registered metric), `optim` (Adam without decay on 1-D parameters) and `base`
(`ClipMethod`: the towers, CLIP's normalisation and the {'frames', 'text'} features).
"""
