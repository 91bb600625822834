"""Latent-quality probes (paper §3; docs/DESIGN.md §6): `care probe` measures how much a
pretrained model's latent action knows about actions (LP-MSE), whether it is a shortcut
code of the target frame (S-PCFC) and whether it tells tasks apart (semantic accuracy).

    care.probes.episodes   which episodes the probes may use (never ones a stage trained on)
    care.probes.latents    models (and a random-weights twin), frames, latent actions
    care.probes.metrics    the probes on arrays: linear probe, S-PCFC, the task classifier
    care.probes.report     probe.md and latents.png
    care.probes.run        the command

A layer-7 package beside care.training and care.evaluation: it reads pretrained folders and
datasets and imports neither sibling.
"""
