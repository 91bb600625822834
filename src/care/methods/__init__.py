"""Pretraining methods, chosen by name: `care pretrain --method.type=care`.

Each method is a folder with a predictable pair of files (LeRobot's policy layout):

    methods/<name>/configuration_<name>.py   its MethodConfig subclass, registered under <name>
    methods/<name>/modeling_<name>.py        its pretraining model: nn.Module with
                                             forward(batch) -> {"loss", logged scalars...},
                                             save_pretrained / from_pretrained, and `.vlm`
                                             (the latent VLM that fine-tuning starts from)

`care.configs` imports every configuration module (so `--method.type` knows every name);
`care.methods.registry.model_class(name)` imports a modeling module only when it is used.
Adding a method is a recipe in docs/DESIGN.md ("Extending care").
"""
