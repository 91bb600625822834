"""The file names of the folders runs write, in one place (docs/DESIGN.md §10).

    a pretrained folder (`care pretrain`)   config.json, method.json, model.safetensors, tokenizer,
                                            hf/<part>/config.json, episodes.json, lam/ (two-stage)
    a stage-1 folder (`care lam`)           lam_config.json, model.safetensors, episodes.json
    a policy folder (`care finetune`)       config.json, policy_config.json, model.safetensors, ...
"""

CONFIG_NAME = "config.json"  # the latent VLM's ModelConfig
METHOD_NAME = "method.json"  # the method's config, with its "type"
WEIGHTS_NAME = "model.safetensors"  # every weight of the folder's model
EPISODES_NAME = "episodes.json"  # the run's training / held-out episodes (the probes refuse the former)
LAM_CONFIG_NAME = "lam_config.json"  # a stage-1 folder's {"model", "method"}
LAM_DIR = "lam"  # where a stage-2 folder keeps its stage-1 model
HF_DIR = "hf"  # configs of parts built from local `transformers` checkpoints
