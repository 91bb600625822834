"""Pretraining methods, chosen by name: `care pretrain --method.type=care`.

Each method is a folder with a predictable pair of files (LeRobot's policy layout):

    methods/<name>/configuration_<name>.py   its MethodConfig subclass, registered under <name>
    methods/<name>/modeling_<name>.py        its pretraining model: a PretrainedModel
                                             (care.methods.model) with forward(batch) ->
                                             {"loss", logged scalars...} and `.vlm` (the latent
                                             VLM that fine-tuning starts from)

What every method shares is here too: model.py (MethodModel: the hooks the training loop calls,
each with a default; PretrainedModel: the pretrained folder), lam.py (LatentActionModel, the
stage-1 base) and two_stage.py (TwoStageModel, the stage-2 base of LAPA and CoMo). Generic
blocks are care.models', which names no method.

`care.configs` imports every configuration module (so `--method.type` knows every name);
`care.methods.registry` imports a modeling module, by the import string its config names, only
when it is used.
Adding a method is a recipe in docs/DESIGN.md ("Extending care").
"""
